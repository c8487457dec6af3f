"""spark-submit entry point: ``spark-submit jobs/evaluate.py --synthetic S --training T --holdout H --report R``.

Same flags as ``spark-synth evaluate``; the session comes from spark-submit (any master).
"""

import sys

from spark_synth.face.cli import main

if __name__ == "__main__":
    main(["evaluate", *sys.argv[1:]])
