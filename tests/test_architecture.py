"""The architecture as written down: import contracts (pyproject.toml) and no hidden upward imports."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "parsers", "jobs")


def test_the_import_contracts_in_pyproject_hold():
    # lint_imports configures logging with dictConfig, which disables every logger that exists;
    # they are enabled again so later tests still see what donebox logs
    loggers = [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    enabled = [lg for lg in loggers if not lg.disabled]
    try:
        assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0
    finally:
        for lg in enabled:
            lg.disabled = False


def _function_level_imports() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts or path == ROOT / "app" / "cli.py":
                continue
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import):
                        names = [a.name for a in inner.names]
                    elif isinstance(inner, ast.ImportFrom):
                        names = [inner.module or ""]
                    else:
                        continue
                    ours = [n for n in names if n.split(".")[0] in PACKAGES]
                    if ours and "#" not in lines[inner.lineno - 1]:  # one allowed with its reason beside it
                        found.append(f"{path.relative_to(ROOT)}:{inner.lineno} imports {', '.join(ours)}")
    return found


def test_no_function_level_import_of_our_own_code_outside_the_cli_without_a_reason():
    assert _function_level_imports() == []


def test_only_the_outbox_module_writes_outbox_rows_and_their_events_in_raw_sql():
    """A new message is queued, leased, due and has its 'queued' event by one rule
    (app.relay.outbox.pg_create_queued); raw SQL elsewhere that inserts rows would repeat it."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts or path == ROOT / "app" / "relay" / "outbox.py":
                continue
            text = " ".join(path.read_text().split()).lower()
            found += [
                f"{path.relative_to(ROOT)}: {table}"
                for table in ("insert into outboundmessage", "insert into messageevent")
                if table in text
            ]
    assert found == []
