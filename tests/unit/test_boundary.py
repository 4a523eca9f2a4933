"""The layers, as the imports show them.

- ``risk/`` is the pure core: numpy and the standard library, no environment, no clock.
- ``streams/`` is the worker; ``streams/tools/`` are the tools around it (bench, market,
  feed, dashboards, the embedded broker), which no worker module imports. The command
  line imports a tool only inside the command that runs it.
- ``streams/kafka/`` is the only package that imports aiokafka, and its ``clients`` module
  makes every Kafka client, with the security settings.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
RISK, STREAMS = ROOT / "risk", ROOT / "streams"
TOOLS, KAFKA, CLI = STREAMS / "tools", STREAMS / "kafka", STREAMS / "cli.py"
ALLOWED = set(sys.stdlib_module_names) | {"numpy", "risk"}
FORBIDDEN_CALLS = {("os", "environ"), ("os", "getenv"), ("time", "time"), ("time", "monotonic"),
                   ("datetime", "now"), ("random", "random")}
PRODUCT = sorted([*RISK.rglob("*.py"), *STREAMS.rglob("*.py")])
WORKER = [m for m in PRODUCT if m.is_relative_to(STREAMS) and not m.is_relative_to(TOOLS)
          and m != CLI]


def imports(tree: ast.AST) -> set[str]:
    """Every module a tree imports, in full (``from a.b import c`` is ``a.b``)."""
    found = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    return found | {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module}


def top_level_imports(tree: ast.Module) -> set[str]:
    """The modules imported when a module loads: at its top level, outside functions."""
    return imports(ast.Module(body=[node for node in tree.body
                                    if isinstance(node, ast.Import | ast.ImportFrom)],
                              type_ignores=[]))


def parsed(module: Path) -> ast.Module:
    return ast.parse(module.read_text())


def name(module: Path) -> str:
    return str(module.relative_to(ROOT))


@pytest.mark.parametrize("module", sorted(RISK.glob("*.py")), ids=name)
def test_the_core_imports_only_numpy_and_the_standard_library(module: Path) -> None:
    imported = {m.split(".")[0] for m in imports(parsed(module))}
    assert imported <= ALLOWED, imported - ALLOWED


@pytest.mark.parametrize("module", sorted(RISK.glob("*.py")), ids=name)
def test_the_core_reads_no_environment_and_no_clock(module: Path) -> None:
    used = {(node.value.id, node.attr) for node in ast.walk(parsed(module))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)}
    assert not used & FORBIDDEN_CALLS, used & FORBIDDEN_CALLS


@pytest.mark.parametrize("module", WORKER, ids=name)
def test_worker_modules_import_no_tool(module: Path) -> None:
    tools = {m for m in imports(parsed(module)) if m.startswith("streams.tools")}
    assert not tools, tools


def test_the_command_line_imports_tools_only_when_a_command_runs() -> None:
    tree = parsed(CLI)
    assert not {m for m in top_level_imports(tree) if m.startswith("streams.tools")}
    assert {m for m in imports(tree) if m.startswith("streams.tools")}  # it does use them


@pytest.mark.parametrize("module", PRODUCT, ids=name)
def test_only_the_kafka_package_imports_aiokafka(module: Path) -> None:
    kafka = {m for m in imports(parsed(module)) if m.split(".")[0] == "aiokafka"}
    assert module.is_relative_to(KAFKA) or not kafka, kafka


def test_the_kafka_package_is_where_aiokafka_is_used() -> None:
    assert any("aiokafka" in {m.split(".")[0] for m in imports(parsed(module))}
               for module in KAFKA.glob("*.py"))


CLIENTS = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient"}


@pytest.mark.parametrize("module", PRODUCT, ids=name)
def test_every_kafka_client_is_made_by_the_connection(module: Path) -> None:
    """So that none is opened without the security settings (streams.kafka.clients)."""
    made = {node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            for node in ast.walk(parsed(module)) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)}
    assert module == KAFKA / "clients.py" or not made & CLIENTS, made & CLIENTS
