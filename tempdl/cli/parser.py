"""The command line's parser: every subcommand, its flags, help text and examples, and the exit codes.

Built apart from the dispatch in `tempdl.cli.main`, which parses with it, loads the settings and
runs the command's handler. Light on purpose: only argparse and the log options, so `--help`, a
mistyped flag or `--version` answer without loading any command's code.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import NoReturn

from tempdl import __version__
from tempdl.cli.logs import FORMAT_VARIABLE, LEVEL_VARIABLE, LOG_FORMATS, LOG_LEVELS

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_CODES = """exit codes:
  0  done
  1  the command failed (a missing file, a database that does not answer, ...)
  2  usage or configuration error (a bad flag, a bad config value: the message names it)"""
GLOBAL_OPTIONS = ("--config", "--data-dir", "--log-format", "--log-level")
"""Options every subcommand takes, before or after its name; each takes a value."""


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
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # one line, exit 2, as argparse does, but no usage dump
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _add_global_options(parser: argparse.ArgumentParser, default: object) -> None:
    """The global options; `default=SUPPRESS` on subcommands keeps a value given before the name."""
    parser.add_argument(
        "--config", metavar="PATH", default=default, help="config file (env TEMPDL_CONFIG; default ./tempdl.toml)"
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        dest="data_dir",
        default=default,
        help="folder of the SQLite database and secret.key (env TEMPDL_DATA_DIR; default ./data)",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=default,
        help=f"text: key=value lines; json: one object per line (env {FORMAT_VARIABLE}; default text)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.upper,
        default=default,
        help=f"least severe level logged (env {LEVEL_VARIABLE}; default INFO)",
    )


def _command(commands, name: str, summary: str, examples: str) -> argparse.ArgumentParser:
    description = summary[0].upper() + summary[1:] + "."
    epilog = f"examples:\n{examples}\n\n{EXIT_CODES}"
    subparser = commands.add_parser(name, help=summary, description=description, epilog=epilog)
    _add_global_options(subparser, argparse.SUPPRESS)
    return subparser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tempdl",
        description="Temporary download links for a WeChat Official Account. Without a COMMAND: serve.",
        epilog=f"examples:\n  tempdl --config /etc/tempdl.toml check\n  tempdl issue InstMsiW.exe --to alice\n\n"
        f"{EXIT_CODES}\n\n`tempdl COMMAND --help` shows a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"tempdl {__version__}")
    _add_global_options(parser, None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    serve_flags = _command(
        commands,
        "serve",
        "run the server (the default command); migrates the database first",
        "  tempdl serve --port 8001\n  TEMPDL_PORT=8001 tempdl --log-format json",
    )
    serve_flags.add_argument("--address", help="listen address (env TEMPDL_ADDRESS; default 127.0.0.1)")
    serve_flags.add_argument("--port", type=_positive_int, help="listen port (env TEMPDL_PORT; default 8000)")

    issue_flags = _command(
        commands,
        "issue",
        "print a new link for a file, alone on stdout",
        "  tempdl issue InstMsiW.exe\n  tempdl issue InstMsiW.exe --to alice --ttl 3600 --max-downloads 2",
    )
    issue_flags.add_argument("file_id", metavar="FILE_ID", help="a file's id (`tempdl check` lists them)")
    issue_flags.add_argument("--to", dest="recipient", metavar="RECIPIENT", help="who the link is for (audit)")
    issue_flags.add_argument(
        "--ttl",
        type=_at_least_one,
        metavar="SECONDS",
        help="seconds the link stays valid (default: the file's ttl, else link_ttl, env TEMPDL_LINK_TTL)",
    )
    issue_flags.add_argument(
        "--max-downloads",
        type=_at_least_one,
        metavar="N",
        help="complete downloads allowed (default: the file's max_downloads, else limits.max_downloads)",
    )

    stats_flags = _command(
        commands,
        "stats",
        "report on downloads and bandwidth (reads only)",
        "  tempdl stats\n  tempdl stats --since 2026-11-01 --by file --format csv",
    )
    stats_flags.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help="first day counted (in `timezone`)")
    stats_flags.add_argument("--until", type=_date, metavar="YYYY-MM-DD", help="last day counted (in `timezone`)")
    stats_flags.add_argument(
        "--by", choices=("day", "file", "recipient", "outcome"), default="day", help="one row per (default day)"
    )
    stats_flags.add_argument("--format", choices=("table", "json", "csv"), default="table", help="default table")

    revoke_flags = _command(
        commands,
        "revoke",
        "make a link stop working now",
        "  tempdl revoke 42\n  tempdl revoke https://dl.example.com/api/get_file/...",
    )
    revoke_flags.add_argument(
        "target", metavar="ISSUANCE_ID_OR_LINK", help="the issuance id (audit) or the link itself"
    )

    db_flags = _command(commands, "db", "database maintenance: apply the migrations", "  tempdl db upgrade")
    db_flags.add_argument("action", choices=("upgrade",), help="upgrade: migrate to the newest schema")

    prune_flags = _command(commands, "prune", "delete old audit rows", "  tempdl prune --older-than 365")
    prune_flags.add_argument(
        "--older-than",
        type=_positive_int,
        metavar="DAYS",
        required=True,
        dest="older_than",
        help="delete audit rows older than this many days",
    )

    init_flags = _command(
        commands,
        "init",
        "write a commented tempdl.toml and the secret",
        "  tempdl init\n  tempdl init --config /etc/tempdl.toml --owner tempdl --data-dir /var/lib/tempdl "
        "--files-dir /srv/tempdl --public-url https://dl.example.com\n  tempdl init --example > tempdl.toml",
    )
    init_flags.add_argument("--public-url", dest="public_url", metavar="URL", help="prefix of the links handed out")
    init_flags.add_argument("--wechat-token", dest="wechat_token", metavar="TOKEN", help="default: random")
    init_flags.add_argument("--address", help="listen address (default 127.0.0.1)")
    init_flags.add_argument("--port", type=_positive_int, help="listen port (default 8000)")
    init_flags.add_argument("--files-dir", dest="files_dir", metavar="DIR", help="default: ./static_files")
    init_flags.add_argument("--owner", metavar="USER", help="as root: the service's user gets data-dir and the secret")
    init_flags.add_argument("--force", action="store_true", help="replace an existing config file")
    init_flags.add_argument("--example", action="store_true", help="print tempdl.toml.example and stop")

    _command(
        commands,
        "check",
        "validate the config and show what would be served",
        "  tempdl check\n  tempdl --config /etc/tempdl.toml check",
    )

    ingest_flags = _command(
        commands,
        "ingest-nginx-log",
        "x-accel mode: record what nginx sent (see deploy/nginx-x-accel.conf)",
        "  tempdl ingest-nginx-log /var/log/nginx/tempdl-access.log\n"
        "  tempdl ingest-nginx-log /var/log/nginx/tempdl-access.log.1 /var/log/nginx/tempdl-access.log.2.gz",
    )
    ingest_flags.add_argument(
        "log_files", nargs="+", metavar="FILE", help="nginx access log in the tempdl format (.gz too)"
    )
    return parser
