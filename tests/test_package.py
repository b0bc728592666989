"""Package-wide rules: ruff clean, one-way dependencies, a working console script."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ssc_nas

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ssc_nas"

# Lower layers never import higher ones (shared/design/architecture.md).
ORDER = ["errors", "runtime", "layers", "cost", "budget", "models", "spaces", "convert", "data",
         "train", "baselines", "search", "progress", "compare", "report", "cli"]


def _layer_of(module: str) -> str | None:
    head = module.split(".")[0]
    return head if head in ORDER else None


def _internal_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    rel = path.relative_to(PACKAGE).with_suffix("")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None or (
            isinstance(node, ast.ImportFrom) and node.level
        ):
            if node.level == 0:
                if node.module and node.module.startswith("ssc_nas."):
                    found.add(node.module.removeprefix("ssc_nas."))
                continue
            base = list(rel.parts[: len(rel.parts) - node.level])
            target = ".".join(base + ([node.module] if node.module else []))
            if target:
                found.add(target)
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("ssc_nas.") for a in node.names
                         if a.name.startswith("ssc_nas."))
    return found


def test_dependencies_point_one_way() -> None:
    bad = []
    for path in PACKAGE.rglob("*.py"):
        me = _layer_of(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        if me is None:
            continue
        for target in _internal_imports(path):
            other = _layer_of(target)
            if other is not None and ORDER.index(other) > ORDER.index(me):
                bad.append(f"{path.relative_to(ROOT)} ({me}) imports {target} ({other})")
    assert not bad, "\n".join(bad)


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is part of the test extra: pip install -e '.[test]'")
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_console_script_version() -> None:
    result = subprocess.run([sys.executable, "-m", "ssc_nas", "--version"], capture_output=True,
                            text=True, check=True)
    assert ssc_nas.__version__ in result.stdout


def test_public_surface() -> None:
    for name in ssc_nas.__all__:
        assert hasattr(ssc_nas, name), name
