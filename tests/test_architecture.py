"""The architecture, checked: no import cycle, no private name crossing modules, and the code that runs in
Spark tasks, training ranks and MLflow serving (encoding, model, train, privacy, the generators) never imports
Spark. The imports are read from the source (every import, inside functions too), and the Spark-free rule is
also checked by importing those modules in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "spark_synth"
SPARK_FREE = ("spark_synth.encoding", "spark_synth.model", "spark_synth.training", "spark_synth.privacy",
              "spark_synth.generators", "spark_synth.ownership", "spark_synth.errors", "spark_synth.resources",
              "spark_synth.tables")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> list[tuple[str, list[str], bool]]:
    """(imported module, names taken from it, whether only for type checking) for every import in ``name``."""
    tree = ast.parse(MODULES[name].read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                   for n in ast.walk(node)}
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], id(node) in typing_only) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], *filter(None, [base])])
            for alias in node.names:  # `from pkg import module` depends on the module itself
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                found.append((target, [alias.name], id(node) in typing_only))
    return found


def _graph() -> dict[str, set[str]]:
    return {name: {target for target, _, typing in _imports(name) if target in MODULES and target != name
                   and not typing and not name.startswith(target + ".")}  # a package's own __init__ runs first anyway
            for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_no_private_name_is_imported_across_modules() -> None:
    crossing = [f"{name} imports {target}.{n}" for name in MODULES for target, names, _ in _imports(name)
                if target.startswith("spark_synth") for n in names if n.startswith("_") and not n.startswith("__")]
    assert crossing == []


def _reaches_spark(name: str, graph: dict[str, set[str]], seen: set[str]) -> list[str] | None:
    """The import chain from ``name`` to pyspark, if any."""
    if any(t.startswith("pyspark") for t, _, typing in _imports(name) if not typing):
        return [name, "pyspark"]
    for target in sorted(graph[name]):
        if target not in seen:
            seen.add(target)
            chain = _reaches_spark(target, graph, seen)
            if chain:
                return [name, *chain]
    return None


def test_worker_side_code_never_imports_spark() -> None:
    graph = _graph()
    worker_side = [m for m in MODULES if m == "spark_synth" or any(m == p or m.startswith(p + ".") for p in SPARK_FREE)]
    chains = {m: chain for m in worker_side if (chain := _reaches_spark(m, graph, {m}))}
    assert chains == {}
    # mlflow.pyfunc itself imports pyspark where it is installed: the serving module is checked by its source only
    imported = [m for m in worker_side if m != "spark_synth.generators.mlflow_model"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in imported)
            + "print(sorted(m for m in sys.modules if m.startswith('pyspark')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_public_api_resolves_every_name() -> None:
    """Even after the modules behind it are imported: a subpackage named like a function would shadow it."""
    import spark_synth
    import spark_synth.stages.evaluate  # noqa: F401 - the stages import every subpackage
    import spark_synth.stages.generate  # noqa: F401
    import spark_synth.stages.train  # noqa: F401

    assert {name: callable(getattr(spark_synth, name)) for name in spark_synth.__all__ if name != "__version__"} == \
        {name: True for name in spark_synth.__all__ if name != "__version__"}


def test_privacy_math_imports_neither_spark_nor_the_training_loop() -> None:
    """The accounting and the DP plan stand alone: reviewed, tested and reused without the training or Spark."""
    graph = _graph()
    reached: dict[str, set[str]] = {}
    for name in (m for m in MODULES if m.startswith("spark_synth.privacy")):
        seen, todo = set(), [name]
        while todo:
            for target in graph[todo.pop()] - seen:
                seen.add(target)
                todo.append(target)
        reached[name] = {m for m in seen if m.startswith(("spark_synth.training", "spark_synth.spark", "spark_synth.stages"))}
    assert reached == {name: set() for name in reached}
