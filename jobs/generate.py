"""spark-submit entry point: ``spark-submit jobs/generate.py --config conf/census-generate.yaml [flags]``.

Same flags as ``spark-synth generate``; the session comes from spark-submit (any master).
"""

import sys

from spark_synth.cli import run

if __name__ == "__main__":
    sys.exit(run(["generate", *sys.argv[1:]]))
