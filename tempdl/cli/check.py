"""`check`: look before restarting the server.

It reads the configuration the way `serve` would and says what would be served; it exits
non-zero when something would go wrong (a file on offer that is missing, a keyword that asks for
two files, an unreadable secret, a database that does not answer), so an operator can run it
before `systemctl restart`.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from tempdl.audit.open import schema_revisions
from tempdl.cli.init import WECHAT_PORTS
from tempdl.cli.serve import x_accel_ignored_limits
from tempdl.config.secret import SECRET_KEY_FILE
from tempdl.config.settings import FILE_ID_PATTERN, Settings
from tempdl.errors import CommandError
from tempdl.links.catalog import Catalog, offer_conflicts
from tempdl.reports.formats import human_bytes


@dataclass
class Findings:
    """What `check` found: lines to show, and the problems that make it exit non-zero."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _width(text: str) -> int:
    """Columns `text` takes in a terminal: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as aligned, indented lines; the last column is not padded."""
    widths = [max(_width(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return [
        "  "
        + "".join(cell + " " * (width - _width(cell) + 2) for cell, width in zip(row[:-1], widths, strict=True))
        + row[-1]
        for row in rows
    ]


def check_files(settings: Settings, found: Findings) -> None:
    catalog = Catalog(settings.files_dir, settings.files, refuse_conflicts=False)
    if not settings.files_dir.is_dir():
        found.problems.append(f"files_dir {settings.files_dir} is not a folder")
    offered = catalog.listing()
    rows = [("ID", "SIZE", "KEYWORDS", "FILE")]
    for entry in offered:
        located = catalog.locate(entry)
        if located is None:
            size = "MISSING"
            found.problems.append(
                f"file {entry.id!r}: {settings.files_dir / entry.path} is missing or outside files_dir"
            )
        else:
            size = human_bytes(located[1].st_size)
            if not catalog.servable(entry):
                size = "UNREADABLE"
                found.problems.append(f"file {entry.id!r}: {located[0]} cannot be read by this user")
        rows.append((entry.id, size, ", ".join(entry.keywords), entry.path))
    found.lines.append(f"files on offer from {settings.files_dir}: {len(offered)}")
    if offered:
        found.lines += table(rows)
    if not offered:
        found.problems.append(f"nothing is on offer: put files in {settings.files_dir} or list them in [[files]]")

    if settings.files is not None:
        found.problems += offer_conflicts(offered)
    if settings.files is None and settings.files_dir.is_dir():
        for path in sorted(settings.files_dir.iterdir()):
            if path.is_file() and not path.name.startswith(".") and not FILE_ID_PATTERN.fullmatch(path.name):
                found.warnings.append(f"{path.name!r} is not offered: rename it or give it an id in [[files]]")


def check_secret(settings: Settings, found: Findings) -> None:
    if settings.secret_keys:
        found.lines.append(f"signing keys: {len(settings.secret_keys)} from secret_keys")
        return
    key_path = settings.data_dir / SECRET_KEY_FILE
    if not key_path.exists():
        found.lines.append(f"signing key: {key_path} does not exist yet; serve generates it")
        return
    try:
        keys = [line for line in key_path.read_text().splitlines() if line.strip()]
    except OSError as error:
        found.problems.append(f"signing key {key_path} cannot be read: {error.strerror}")
        return
    if not keys:
        found.problems.append(f"signing key {key_path} is empty; delete it to generate a new one")
    else:
        found.lines.append(f"signing key: {key_path}")


def check_scale_out(settings: Settings, found: Findings) -> None:
    """Settings that work for one process but not for several, or not behind nginx."""
    if not settings.database_url.startswith("sqlite") and not settings.secret_keys:
        found.warnings.append(
            "database_url is a shared database but secret_keys is not set: every process would sign "
            "with its own generated key and refuse the others' links; set the same secret_keys everywhere"
        )
    for key in x_accel_ignored_limits(settings):
        found.warnings.append(
            f"{key} is nginx's job in x-accel mode (limit_conn, limit_rate: see deploy/nginx-x-accel.conf)"
        )


def check_database(settings: Settings, found: Findings) -> None:
    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        found.lines.append(f"database: {shown} (created at first start)")
        return
    try:
        current, newest = schema_revisions(settings.database_url)
    except ModuleNotFoundError as error:
        found.problems.append(
            f"database {shown}: its driver {error.name!r} is not installed "
            "(build the pyz with --with-postgresql, or pip install -r requirements.txt)"
        )
        return
    except Exception as error:  # any driver error: the operator needs the message, not a traceback
        found.problems.append(f"database {shown} does not answer: {getattr(error, 'orig', None) or error}")
        return
    state = "newest" if current == newest else f"serve upgrades it to {newest}"
    found.lines.append(f"database: {shown} (schema {current or 'empty'}, {state})")


def check_service(settings: Settings, found: Findings) -> None:
    found.lines.append(f"config: {settings.config_path or 'none (defaults)'}")
    found.lines.append(f"listen: {settings.address}:{settings.port}   links: {settings.public_url}/api/get_file/...")
    wechat_url = settings.public_url + settings.wechat.path
    if settings.wechat.token:
        mode = "safe mode" if settings.wechat.encoding_aes_key else "plaintext mode"
        found.lines.append(f"wechat: {wechat_url} (token set, {mode})")
        if urllib.parse.urlsplit(settings.public_url).port not in WECHAT_PORTS:
            found.warnings.append(f"WeChat only calls URLs on port 80 or 443, not {wechat_url}: put nginx in front")
    else:
        found.lines.append(f"wechat: {wechat_url} not configured (set wechat.token); it answers 503")
    host = urllib.parse.urlsplit(settings.public_url).hostname or ""
    if settings.public_url.startswith("http://") and host not in {"127.0.0.1", "localhost", "::1"}:
        found.warnings.append("public_url is http://: links travel in clear text; use https behind nginx")


def check(args: argparse.Namespace, settings: Settings) -> int:
    """`check`: what would be served, and a non-zero exit when something is wrong."""
    found = Findings()
    check_service(settings, found)
    check_secret(settings, found)
    check_scale_out(settings, found)
    check_database(settings, found)
    check_files(settings, found)
    output = found.lines + [f"warning: {text}" for text in found.warnings]
    output += [f"PROBLEM: {text}" for text in found.problems]
    sys.stdout.write("\n".join(output) + "\n")
    if found.problems:
        count = len(found.problems)
        raise CommandError(f"{count} problem{'s' if count > 1 else ''} found; fix before (re)starting the server")
    sys.stdout.write("ok: the configuration can be served\n")
    return 0
