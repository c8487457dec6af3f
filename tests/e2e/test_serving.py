"""A registered generator, promoted to an alias, served by `mlflow models serve` over HTTP on loopback."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from support.servers import free_port, running

from spark_synth import tracking


def _ping(port: int):
    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False
    return ready


def _post(port: int, body: dict) -> pd.DataFrame:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return pd.DataFrame(json.loads(response.read())["predictions"])


@pytest.fixture(scope="module")
def served(trained_generator, tmp_path_factory) -> int:
    """The registered generator, aliased `champion`, served by MLflow's own scoring server."""
    store = trained_generator.store
    name = trained_generator.registered_name
    version = tracking.promote(f"models:/{name}/1", "champion", store.uri)
    assert version == "1"
    port = free_port()
    argv = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{name}@champion",
            "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "--workers", "1"]
    # the server runs uvicorn from this environment's bin directory
    env = {"MLFLOW_TRACKING_URI": store.uri, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                                       os.environ.get("PATH", "")])}
    with running(argv, _ping(port), tmp_path_factory.mktemp("serve") / "server.log", env):
        yield port


def test_mlflow_models_serve_returns_synthetic_rows(served, trained_generator) -> None:
    training = pd.read_parquet(trained_generator.data)
    rows = _post(served, {"dataframe_records": [{"rows": 7, "seed": 3}]})
    assert len(rows) == 7 and list(rows.columns) == list(training.columns)
    assert set(rows["sex"].dropna()) <= set(training["sex"])
    again = _post(served, {"dataframe_records": [{"rows": 7, "seed": 3}]})
    pd.testing.assert_frame_equal(rows, again)  # a request's seed makes it reproducible


def test_served_generator_takes_seed_rows_and_sampling_params(served) -> None:
    body = {"dataframe_split": {"columns": ["sex", "age"], "data": [["Female", 30], ["Male", 61], ["Female", 45]]},
            "params": {"temperature": 0.8, "top_p": 0.95, "seed": 1}}
    rows = _post(served, body)
    assert rows["sex"].tolist() == ["Female", "Male", "Female"] and rows["age"].tolist() == [30, 61, 45]


def test_served_request_over_the_cap_is_refused(served) -> None:
    """Refused before sampling, as a 400 that names the limit and how to get the rows."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        _post(served, {"dataframe_records": [{"rows": 60_000}, {"rows": 40_001}]})
    assert refused.value.code == 400
    body = json.loads(refused.value.read())
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "100,001 rows" in body["message"] and "at most 100,000" in body["message"]
    assert "spark-synth generate" in body["message"] and "SPARK_SYNTH_MAX_REQUEST_ROWS" in body["message"]
