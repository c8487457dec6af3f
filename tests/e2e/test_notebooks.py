"""Every notebook runs top to bottom (code cells executed in order, with a tiny training budget)."""

from __future__ import annotations

import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: pathlib.Path, spark, monkeypatch) -> None:
    monkeypatch.setenv("NOTEBOOK_MAX_MINUTES", "0.1")
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    namespace: dict = {"__name__": "__notebook__"}
    for index, cell in enumerate(cells):
        code = "".join(cell["source"])
        exec(compile(code, f"{path.name}[cell {index}]", "exec"), namespace)  # noqa: S102 - our own notebook
