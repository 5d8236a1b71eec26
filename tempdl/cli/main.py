"""The command line: `serve` (default), `issue`, `stats`, `revoke`, `db upgrade`, `prune`, `init`, `check`,
`ingest-nginx-log`.

Every failure is one line on stderr and a non-zero exit code, never a traceback: operators run
these from cron and shell scripts. The parser, its help text and the exit codes are
`tempdl.cli.parser`'s; here the arguments are dispatched to the command that runs them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from tempdl.cli.logs import FORMAT_VARIABLE, LEVEL_VARIABLE, LOG_FORMATS, LOG_LEVELS, configure_logging
from tempdl.cli.parser import EXIT_FAILURE, EXIT_USAGE, GLOBAL_OPTIONS, build_parser
from tempdl.config.load import load_settings
from tempdl.config.secret import ensure_secret_keys
from tempdl.config.settings import Settings
from tempdl.errors import CommandError, ConfigError

log = logging.getLogger("tempdl")

COMMAND_HANDLERS = {
    "serve": ("serve", "serve"),
    "issue": ("links", "issue"),
    "stats": ("reports", "stats"),
    "revoke": ("links", "revoke"),
    "db": ("maintenance", "db_upgrade"),
    "prune": ("maintenance", "prune"),
    "init": ("init", "init"),
    "check": ("check", "check"),
    "ingest-nginx-log": ("maintenance", "ingest_nginx_log"),
}
"""Subcommand name to (module in tempdl.cli, function) that runs it; `init` alone is given no settings."""
COMMANDS = tuple(COMMAND_HANDLERS)

Handler = Callable[[argparse.Namespace, Settings], int]


def handler_for(command: str) -> Handler:
    """What runs `command`, its module imported only now.

    Not at the top: the commands load SQLAlchemy and Tornado, which `--help`, `--version`, a
    mistyped flag and a config error have no use for and would wait about a second of CPU on.
    And only the one asked for: a long-running `serve` does not carry the other commands' code
    (1.4 MiB of resident memory, with the compression modules `ingest-nginx-log` reads logs by).
    """
    module, function = COMMAND_HANDLERS[command]
    handler: Handler = getattr(importlib.import_module(f"tempdl.cli.{module}"), function)
    return handler


def _settings(args: argparse.Namespace) -> Settings:
    flags = {key: getattr(args, key, None) for key in ("config", "address", "port", "data_dir")}
    return load_settings(flags)


def _with_command(argv: list[str]) -> list[str]:
    """`argv` with `serve` put first when it names no command (`tempdl --port 8001` serves)."""
    index = 0
    while index < len(argv):
        token = argv[index]
        if token in COMMANDS:
            return argv
        if token in {"-h", "--help", "--version"}:
            return argv
        index += 2 if token in GLOBAL_OPTIONS else 1
    return ["serve", *argv]


def _log_options(args: argparse.Namespace) -> tuple[str, str]:
    """The log format and level: flag, else environment, else text and INFO; a bad value is a usage error."""
    log_format = args.log_format or os.environ.get(FORMAT_VARIABLE) or "text"
    log_level = (args.log_level or os.environ.get(LEVEL_VARIABLE) or "INFO").upper()
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"{FORMAT_VARIABLE}={log_format!r}: choose from {', '.join(LOG_FORMATS)}")
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"{LEVEL_VARIABLE}={log_level!r}: choose from {', '.join(LOG_LEVELS)}")
    return log_format, log_level


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_with_command(list(sys.argv[1:] if argv is None else argv)))
    try:
        configure_logging(*_log_options(args))
        settings = None if args.command == "init" else _settings(args)  # init writes the file _settings reads
        return _run(args, settings)
    except (ConfigError, CommandError) as error:
        sys.stderr.write(f"tempdl: {error}\n")
        return EXIT_USAGE if isinstance(error, ConfigError) else EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings | None) -> int:
    if settings is not None and args.command in {"serve", "issue", "revoke"}:
        settings = ensure_secret_keys(settings)
    try:
        return handler_for(args.command)(args, settings)  # type: ignore[arg-type]  # None only for init
    except (CommandError, ConfigError):
        raise
    except Exception as error:  # the promise: one line, never a traceback
        from sqlalchemy.exc import DBAPIError  # not at the top, for the reason given in handler_for()

        if isinstance(error, DBAPIError):
            raise CommandError(f"the audit database cannot be used: {error.orig}") from None
        raise CommandError(f"{type(error).__name__}: {error}") from None
