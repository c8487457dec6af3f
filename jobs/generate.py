"""spark-submit entry point: ``spark-submit jobs/generate.py --config conf/census-generate.yaml [flags]``.

Same flags as ``spark-synth generate``; the session comes from spark-submit (any master).
"""

import sys

from spark_synth.face.cli import main

if __name__ == "__main__":
    main(["generate", *sys.argv[1:]])
