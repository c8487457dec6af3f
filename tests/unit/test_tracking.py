"""What tracking prints and logs: no secrets from URIs, config flattened to short params."""

import pytest

from spark_synth.secrets import redact
from spark_synth.tracking import flatten


@pytest.mark.parametrize(("text", "shown"), [
    ("postgresql://alice:s3cret@db:5432/mlflow", "postgresql://alice:***@db:5432/mlflow"),
    ("sc://spark.example.com:443/;use_ssl=true;token=abc123XYZ;user_id=u",
     "sc://spark.example.com:443/;use_ssl=true;token=***;user_id=u"),
    ("https://acct.blob.core.windows.net/c/data.csv?sv=2021&sig=Zx%2Fq9&se=2030",
     "https://acct.blob.core.windows.net/c/data.csv?sv=2021&sig=***&se=2030"),
    ("cannot reach s3a://AKIAKEY:wJalrXUtn/FEMI@bucket/x", "cannot reach s3a://AKIAKEY:***@bucket/x"),
    ("DATABRICKS_TOKEN is dapi0123456789abcdef0123456789abcdef", "DATABRICKS_TOKEN is ***"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("the column 'token' is missing", "the column 'token' is missing"),
])
def test_secrets_in_uris_and_tokens_are_hidden(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_nested_config_becomes_dotted_params() -> None:
    assert flatten({"a": 1, "b": {"c": None, "d": "x"}}) == {"a": "1", "b.d": "x"}


def test_params_never_hold_a_password() -> None:
    assert flatten({"data": "s3a://key:secret@bucket/t"}) == {"data": "s3a://key:***@bucket/t"}
