"""Column encodings: raw values <-> small integer codes. numpy/Arrow only: no Spark, no torch.

Each codec is rebuilt exactly from its protected statistics (a JSON-able dict), so a saved
generator is data, not code.
"""

from spark_synth.encoding.table import TableCodec, build_codec

__all__ = ["TableCodec", "build_codec"]
