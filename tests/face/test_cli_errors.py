"""What `spark-synth` prints when a command fails unexpectedly: the traceback, with no credentials in it."""

from __future__ import annotations

import pytest

from spark_synth.face import cli
from spark_synth.stages import generate as generate_stage

SECRET_URI = "s3a://AKIAKEY:wJal/rXUtn@FEMI@bucket/data"  # a secret key with "/" and "@" in it


def test_unexpected_error_is_printed_redacted(monkeypatch, capsys, tmp_path) -> None:
    def fails(config) -> int:
        try:
            raise OSError(f"403 Forbidden: https://dapi0123456789abcdef0123456789abcdef@adb-1.net/api for {SECRET_URI}")
        except OSError as cause:
            raise RuntimeError(f"cannot read {SECRET_URI}") from cause

    monkeypatch.setattr(generate_stage, "generate", fails)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["generate", "--model", str(tmp_path / "model"), "--rows", "5", "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    stderr = capsys.readouterr().err
    assert "Traceback" in stderr and "RuntimeError: cannot read s3a://AKIAKEY:***@bucket/data" in stderr
    assert "OSError: 403 Forbidden: https://***@adb-1.net/api" in stderr  # the cause, redacted too
    assert "wJal" not in stderr and "FEMI" not in stderr and "dapi" not in stderr
