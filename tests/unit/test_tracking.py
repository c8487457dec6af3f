"""What tracking prints and logs: no passwords from URIs, config flattened to short params."""

from spark_synth.tracking import flatten, redact


def test_passwords_in_uris_are_hidden() -> None:
    assert redact("postgresql://alice:s3cret@db:5432/mlflow") == "postgresql://alice:***@db:5432/mlflow"
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def test_nested_config_becomes_dotted_params() -> None:
    assert flatten({"a": 1, "b": {"c": None, "d": "x"}}) == {"a": "1", "b.d": "x"}
