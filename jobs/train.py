"""spark-submit entry point: ``spark-submit jobs/train.py --config conf/census.yaml [flags]``.

Same flags as ``spark-synth train``; the session comes from spark-submit (any master).
"""

import sys

from spark_synth.face.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
