"""spark-synth: privacy-preserving synthetic data, trained and sampled on Spark."""

import os

# Spark executors share cores between tasks and the JVM. OpenMP's default busy-waiting then makes torch's
# threads spin against each other: measured here, a training step took 16x longer on a busy 2-core machine
# (0.29 s vs 0.018 s). Passive waiting avoids that; it must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
