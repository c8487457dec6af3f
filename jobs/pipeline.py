"""spark-submit entry point: ``spark-submit jobs/pipeline.py --config conf/census.yaml [flags]``.

Train, evaluate (with an optional quality gate that promotes the generator to an MLflow alias) and
generate, in one job: the config is a training config with ``evaluate:`` and ``generate:`` sections.
The session comes from spark-submit (any master); the config may live on any path Spark can read.
"""

import sys

from spark_synth.face.cli import main

if __name__ == "__main__":
    main(["pipeline", *sys.argv[1:]])
