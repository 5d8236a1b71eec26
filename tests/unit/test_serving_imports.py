"""A serving process imports only what serving needs: every module costs resident memory.

Alembic, Mako and SQLAlchemy load in the forked migration child (on SQLite the server runs the
statements that child compiled; SQLAlchemy comes with the first operator page, or a database
other than a SQLite file), prometheus_client on the first /metrics, segno on the first admin
link, the operator pages (their handlers, the report queries, the chart) on the first `/admin/`
or `/metrics` request, and each CLI command's module only when it is the command run.
The check runs in a fresh interpreter, importing what `python server.py serve` imports.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOT_FOR_SERVING = (
    "alembic",
    "sqlalchemy",
    "mako",
    "prometheus_client",
    "segno",
    "tempdl.web.handlers.admin",
    "tempdl.web.handlers.admin_actions",
    "tempdl.web.console",
    "tempdl.reports.stats",
    "tempdl.reports.chart",
    "tempdl.audit.rollup_prune",
    "tempdl.cli.check",
    "tempdl.cli.init",
    "tempdl.cli.links",
    "tempdl.cli.maintenance",
    "tempdl.cli.reports",
    "tempdl.audit.nginx_log",
)


def _modules_after(statement: str) -> set[str]:
    shown = subprocess.run(
        [sys.executable, "-c", f"{statement}; import sys; print('\\n'.join(sys.modules))"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(shown.stdout.split())


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if any(m == name or m.startswith(name + ".") for m in modules))


def test_serving_loads_none_of_the_other_commands_and_tools():
    modules = _modules_after("from tempdl.cli.main import handler_for; handler_for('serve'); import tempdl.app")
    assert "tempdl.web.handlers.download" in modules  # the check sees the serving code at all
    assert _loaded(modules, NOT_FOR_SERVING) == []


def test_the_check_would_see_a_command_module_loaded():
    modules = _modules_after("from tempdl.cli.main import handler_for; handler_for('prune')")
    assert _loaded(modules, NOT_FOR_SERVING) == ["sqlalchemy", "tempdl.audit.nginx_log", "tempdl.cli.maintenance"]


def test_every_command_has_its_handler():
    from tempdl.cli.main import COMMAND_HANDLERS, COMMANDS, handler_for

    assert set(COMMAND_HANDLERS) == set(COMMANDS)
    assert all(callable(handler_for(command)) for command in COMMANDS)
