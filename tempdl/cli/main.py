"""The command line: `serve` (default), `issue`, `stats`, `revoke`, `db upgrade`, `prune`, `init`, `check`,
`ingest-nginx-log`.

Every failure is one line on stderr and a non-zero exit code, never a traceback: operators run
these from cron and shell scripts.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from tempdl import __version__
from tempdl.config.load import load_settings
from tempdl.config.secret import ensure_secret_keys
from tempdl.config.settings import Settings
from tempdl.errors import CommandError, ConfigError
from tempdl.web import log_filter as log_hygiene

log = logging.getLogger("tempdl")


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-30") from None


def _positive_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def _at_least_one(text: str) -> int:
    """A count or a number of seconds where 0 would make something dead on arrival (`--ttl 0`)."""
    number = _positive_int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return number


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, as argparse does, but no usage dump
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="config file (default: ./tempdl.toml if present)")
    common.add_argument("--data-dir", metavar="DIR", dest="data_dir", help="folder for the database and secret")

    parser = _Parser(prog="tempdl", description="Temporary download links for a WeChat Official Account.")
    parser.add_argument("--version", action="version", version=f"tempdl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    serve_flags = commands.add_parser("serve", parents=[common], help="run the server (the default)")
    serve_flags.add_argument("--address", help="listen address (default 127.0.0.1)")
    serve_flags.add_argument("--port", type=_positive_int, help="listen port (default 8000)")

    issue_flags = commands.add_parser("issue", parents=[common], help="print a new link for a file")
    issue_flags.add_argument("file_id", metavar="FILE_ID")
    issue_flags.add_argument("--to", dest="recipient", metavar="RECIPIENT", help="who the link is for (audit)")
    issue_flags.add_argument("--ttl", type=_at_least_one, metavar="SECONDS", help="seconds the link stays valid")
    issue_flags.add_argument("--max-downloads", type=_at_least_one, metavar="N", help="complete downloads allowed")

    stats_flags = commands.add_parser("stats", parents=[common], help="report on downloads and bandwidth")
    stats_flags.add_argument("--since", type=_date, metavar="YYYY-MM-DD")
    stats_flags.add_argument("--until", type=_date, metavar="YYYY-MM-DD")
    stats_flags.add_argument("--by", choices=("day", "file", "recipient", "outcome"), default="day")
    stats_flags.add_argument("--format", choices=("table", "json", "csv"), default="table")

    revoke_flags = commands.add_parser("revoke", parents=[common], help="make a link stop working now")
    revoke_flags.add_argument("target", metavar="ISSUANCE_ID_OR_LINK")

    db_flags = commands.add_parser("db", parents=[common], help="database maintenance")
    db_flags.add_argument("action", choices=("upgrade",))

    prune_flags = commands.add_parser("prune", parents=[common], help="delete old audit rows")
    prune_flags.add_argument("--older-than", type=_positive_int, metavar="DAYS", required=True, dest="older_than")

    init_flags = commands.add_parser("init", parents=[common], help="write a commented tempdl.toml and the secret")
    init_flags.add_argument("--public-url", dest="public_url", metavar="URL", help="prefix of the links handed out")
    init_flags.add_argument("--wechat-token", dest="wechat_token", metavar="TOKEN", help="default: random")
    init_flags.add_argument("--address", help="listen address (default 127.0.0.1)")
    init_flags.add_argument("--port", type=_positive_int, help="listen port (default 8000)")
    init_flags.add_argument("--files-dir", dest="files_dir", metavar="DIR", help="default: ./static_files")
    init_flags.add_argument("--owner", metavar="USER", help="as root: the service's user gets data-dir and the secret")
    init_flags.add_argument("--force", action="store_true", help="replace an existing config file")
    init_flags.add_argument("--example", action="store_true", help="print tempdl.toml.example and stop")

    commands.add_parser("check", parents=[common], help="validate the config and show what would be served")

    ingest_flags = commands.add_parser(
        "ingest-nginx-log", parents=[common], help="x-accel mode: record what nginx sent (see deploy/nginx.conf)"
    )
    ingest_flags.add_argument(
        "log_files", nargs="+", metavar="FILE", help="nginx access log in the tempdl format (.gz too)"
    )
    return parser


Handler = Callable[[argparse.Namespace, Settings], int]


def handlers() -> dict[str, Handler]:
    """Subcommand name to what runs it; `init` alone is given no settings (it writes their file)."""
    # Imported here, not at the top: they load SQLAlchemy and Tornado, which `--help`, `--version`,
    # a mistyped flag and a config error have no use for and would wait about a second of CPU on.
    from tempdl.cli import check, init, links, maintenance, reports, serve

    return {
        "serve": serve.serve,
        "issue": links.issue,
        "stats": reports.stats,
        "revoke": links.revoke,
        "db": maintenance.db_upgrade,
        "prune": maintenance.prune,
        "check": check.check,
        "init": init.init,
        "ingest-nginx-log": maintenance.ingest_nginx_log,
    }


def _settings(args: argparse.Namespace) -> Settings:
    flags = {key: getattr(args, key, None) for key in ("config", "address", "port", "data_dir")}
    return load_settings(flags)


def configure_logging() -> None:
    """key=value lines on stderr, one per request; systemd's journal adds host and process.

    Our lines carry no thread, process or source position, so log records need not look them
    up (the knobs from the logging HOWTO's "Optimization" section): one line per request is
    worth keeping cheap.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # Python 3.12+; harmless before
    logging._srcfile = None  # no caller lookup (a walk up the stack) for %(pathname)s and the like
    logging.basicConfig(level=logging.INFO, format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    log_hygiene.install()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in {"-h", "--help", "--version"}):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        settings = None if args.command == "init" else _settings(args)  # init writes the file _settings reads
        return _run(args, settings)
    except (ConfigError, CommandError) as error:
        sys.stderr.write(f"tempdl: {error}\n")
        return 2 if isinstance(error, ConfigError) else 1
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings | None) -> int:
    if settings is not None and args.command in {"serve", "issue", "revoke"}:
        settings = ensure_secret_keys(settings)
    try:
        return handlers()[args.command](args, settings)  # type: ignore[arg-type]  # None only for init
    except (CommandError, ConfigError):
        raise
    except Exception as error:  # the promise: one line, never a traceback
        from sqlalchemy.exc import DBAPIError  # not at the top, for the reason given in handlers()

        if isinstance(error, DBAPIError):
            raise CommandError(f"the audit database cannot be used: {error.orig}") from None
        raise CommandError(f"{type(error).__name__}: {error}") from None
