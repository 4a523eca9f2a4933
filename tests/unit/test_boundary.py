"""risk/ is the pure core: numpy and the standard library, no environment, no clock."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

RISK = Path(__file__).parents[2] / "risk"
ALLOWED = set(sys.stdlib_module_names) | {"numpy", "risk"}
FORBIDDEN_CALLS = {("os", "environ"), ("os", "getenv"), ("time", "time"), ("time", "monotonic"),
                   ("datetime", "now"), ("random", "random")}


@pytest.mark.parametrize("module", sorted(RISK.glob("*.py")), ids=lambda p: p.name)
def test_the_core_imports_only_numpy_and_the_standard_library(module: Path) -> None:
    tree = ast.parse(module.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= ALLOWED, imported - ALLOWED


@pytest.mark.parametrize("module", sorted(RISK.glob("*.py")), ids=lambda p: p.name)
def test_the_core_reads_no_environment_and_no_clock(module: Path) -> None:
    tree = ast.parse(module.read_text())
    used = {(node.value.id, node.attr) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)}
    assert not used & FORBIDDEN_CALLS, used & FORBIDDEN_CALLS
