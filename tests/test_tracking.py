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
    ("mysql://app:p@ss@db.internal:3306/x", "mysql://app:***@db.internal:3306/x"),  # '@' in the password
    ("'s3a://KEY:a/b@c:d@bucket/t/v@2'", "'s3a://KEY:***@bucket/t/v@2'"),  # and '/', ':'; the path's '@' kept
    ("postgresql://me@corp.com:pw@db/m", "postgresql://me@corp.com:***@db/m"),  # an e-mail as the user
    ("http://u:pw@[::1]:5000/api", "http://u:***@[::1]:5000/api"),
    ("clone https://ghp_0123456789abcdefghijABCDEFGHIJ012345@github.com/o/r.git failed",
     "clone https://***@github.com/o/r.git failed"),  # a token as the whole user part
    ("https://dapi0123456789abcdef0123456789abcdef@adb-1.azuredatabricks.net/api",
     "https://***@adb-1.azuredatabricks.net/api"),
    ("https://SOMETOKEN@host/x (see https://host/users/a@b.c)", "https://***@host/x (see https://host/users/a@b.c)"),
    ("token github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "token ***"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("file:///data/a@b.parquet and git@github.com:o/r", "file:///data/a@b.parquet and git@github.com:o/r"),
    ("the column 'token' is missing", "the column 'token' is missing"),
])
def test_secrets_in_uris_and_tokens_are_hidden(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_nested_config_becomes_dotted_params() -> None:
    assert flatten({"a": 1, "b": {"c": None, "d": "x"}}) == {"a": "1", "b.d": "x"}


def test_params_never_hold_a_password() -> None:
    assert flatten({"data": "s3a://key:secret@bucket/t"}) == {"data": "s3a://key:***@bucket/t"}
