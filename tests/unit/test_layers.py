"""The import rules of DESIGN.md: coordinator and contributor never import each other, the core
imports neither and has no database or network-service code."""

import ast
import subprocess
from pathlib import Path

from tests.support import ROOT

RULES = {
    "moerge": {
        "coordinator",
        "contributor",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "grpc_health",
        "grpc_reflection",
        "flwr",
    },
    "coordinator": {"contributor"},
    "contributor": {"coordinator", "sqlalchemy", "alembic", "psycopg"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_layer_imports_what_it_must_not() -> None:
    violations = []
    for package, forbidden in RULES.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            if "_proto" in path.parts:
                continue
            bad = _imports(path) & forbidden
            if bad:
                violations.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_import_linter_contracts_hold() -> None:
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "lint-imports")], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
