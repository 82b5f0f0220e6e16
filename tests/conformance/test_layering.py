"""The layers of the tree: what each room may import.

``models/`` is the pure brain (no Kafka, no I/O), ``schemas/`` the contracts beneath it,
``agents/`` and ``streams/`` the runtime, and ``streams/lab/`` (simulator, scenarios,
benches, offline scoring) and ``streams/cli/`` sit on top: nothing in production imports
them. Every import counts, including those inside functions.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

STDLIB = set(sys.stdlib_module_names)
# Pure, I/O-free libraries the brain may use: numerics, River, canonical JSON for hashing,
# the VADER lexicon for feedback sentiment, and mypyc's class attributes for the kernels
# models.native compiles.
MODEL_LIBRARIES = {"numpy", "river", "orjson", "vaderSentiment", "mypy_extensions"}
TOP_OF_THE_TREE = ("streams.lab", "streams.cli", "tests")


def imports_of(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules(room: str, *, excluding: tuple[str, ...] = ()) -> list[Path]:
    paths = sorted((ROOT / room).rglob("*.py"))
    return [p for p in paths if not any(p.is_relative_to(ROOT / e) for e in excluding)]


def offending(paths: list[Path], allowed) -> dict[str, list[str]]:
    bad = {}
    for path in paths:
        wrong = sorted(name for name in imports_of(path) if not allowed(name))
        if wrong:
            bad[str(path.relative_to(ROOT))] = wrong
    return bad


def top(name: str) -> str:
    return name.split(".")[0]


def under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_models_import_only_schemas_models_the_standard_library_and_pure_libraries() -> None:
    allowed = {"models", "schemas", "__future__", *STDLIB, *MODEL_LIBRARIES}
    assert offending(modules("models"), lambda n: top(n) in allowed) == {}


# The OTLP wire format (schemas.otlp): its generated message classes and protobuf, which
# reads them; data classes, no I/O.
WIRE_FORMATS = ("opentelemetry.proto", "google.protobuf")


def test_schemas_import_only_themselves_and_the_standard_library() -> None:
    allowed = {"schemas", "__future__", "orjson", *STDLIB}
    assert (
        offending(modules("schemas"), lambda n: top(n) in allowed or under(n, *WIRE_FORMATS)) == {}
    )


def test_production_code_never_imports_the_lab_the_cli_or_the_tests() -> None:
    production = [
        *modules("models"),
        *modules("schemas"),
        *modules("agents"),
        *modules("streams", excluding=("streams/lab", "streams/cli", "streams/__main__.py")),
    ]
    assert offending(production, lambda n: not under(n, *TOP_OF_THE_TREE)) == {}


def test_the_runtime_does_not_import_the_agents() -> None:
    """The app, settings and exporter are beneath the agents, which import them."""
    runtime = modules("streams", excluding=("streams/lab", "streams/cli", "streams/__main__.py"))
    assert offending(runtime, lambda n: not under(n, "agents")) == {}


@pytest.mark.parametrize("room", ["models", "agents", "schemas", "streams", "tests"])
def test_every_folder_of_python_code_is_a_package(room: str) -> None:
    folders = {p.parent for p in (ROOT / room).rglob("*.py")}
    assert sorted(str(f) for f in folders if not (f / "__init__.py").exists()) == []


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from streams.lab.simulator import generate\n")
    assert "streams.lab.simulator" in imports_of(module)
