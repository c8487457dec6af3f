"""Library modules log; the CLI shows their records on the stdout of the moment, warnings marked."""

from __future__ import annotations

import logging

from spark_synth.face.console import show_logs


def test_records_reach_the_current_stdout_once_with_warnings_marked(capsys) -> None:
    show_logs()
    show_logs()  # idempotent: one handler
    logger = logging.getLogger("spark_synth.spark.sequences")
    logger.info("note: something to know")
    logger.warning("something to fix")
    logger.debug("not shown")
    assert capsys.readouterr().out == "note: something to know\nwarning: something to fix\n"
