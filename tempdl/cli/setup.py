"""`init` and `check`: set up a server without reading the source, and look before restarting it.

`init` writes a commented tempdl.toml with a random WeChat token, generates the signing secret, and
prints what to paste into the WeChat admin console. It never overwrites a file unless told to,
and it asks questions only on a terminal, so it also works from provisioning scripts.

`check` reads the configuration the way `serve` would and says what would be served; it exits
non-zero when something would go wrong (a file on offer that is missing, a keyword that asks for
two files, an unreadable secret, a database that does not answer), so an operator can run it
before `systemctl restart`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import string
import sys
import unicodedata
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tempdl import __version__
from tempdl.config.settings import (
    DEFAULT_CONFIG_NAME,
    FILE_ID_PATTERN,
    SECRET_KEY_FILE,
    Settings,
    ensure_secret_keys,
    load_settings,
)
from tempdl.config.toml import example_config, render_config
from tempdl.errors import CommandError, ConfigError
from tempdl.links.catalog import Catalog, normalize_keyword
from tempdl.reports.formats import human_bytes

WECHAT_TOKEN_ALPHABET = string.ascii_letters + string.digits
WECHAT_TOKEN_LENGTH = 32
"""WeChat accepts a Token of 3 to 32 letters and digits; we generate the longest."""
WECHAT_PORTS = {None, 80, 443}
"""WeChat only calls server URLs on the default http/https ports."""
CONFIG_MODE = 0o640
"""The file holds the WeChat token: readable by its owner and the service's group, no one else."""


def invocation() -> str:
    """How the operator started us, for the commands we suggest: the pyz, or the checkout."""
    program = sys.argv[0] if sys.argv else ""
    if program.endswith(".pyz"):
        return f"python3 {program}"
    return "python server.py"


def random_wechat_token() -> str:
    return "".join(secrets.choice(WECHAT_TOKEN_ALPHABET) for _ in range(WECHAT_TOKEN_LENGTH))


def valid_wechat_token(token: str) -> bool:
    return 3 <= len(token) <= WECHAT_TOKEN_LENGTH and all(c in WECHAT_TOKEN_ALPHABET for c in token)


# --- init ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """The account the service runs as (`--owner`): it gets the data folder and the secret."""

    name: str
    uid: int
    gid: int

    @classmethod
    def named(cls, name: str) -> Owner:
        import pwd

        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise CommandError(f"--owner: there is no user {name!r} (create it first: see the README)") from None
        if os.geteuid() != 0:
            raise CommandError("--owner needs root: only root can hand files to another user")
        return cls(name, entry.pw_uid, entry.pw_gid)

    def take(self, folder: Path) -> None:
        """Make `folder` and everything in it belong to this user."""
        os.chown(folder, self.uid, self.gid)
        for root, folders, files in os.walk(folder):
            for name in folders + files:
                os.chown(Path(root) / name, self.uid, self.gid, follow_symlinks=False)


def _check_public_url(value: str) -> str:
    """Validate with the loader's own rule, so init never writes what serve would refuse."""
    try:
        return load_settings({}, {"TEMPDL_PUBLIC_URL": value}, Path("/nonexistent")).public_url
    except ConfigError as error:
        raise CommandError(str(error).replace("TEMPDL_PUBLIC_URL (config key 'public_url')", "public_url")) from None


def _ask(question: str, default: str, check: Callable[[str], str], ask: Callable[[str], str]) -> str:
    while True:
        answer = ask(f"{question} [{default}]: ").strip() or default
        try:
            return check(answer)
        except CommandError as error:
            sys.stderr.write(f"  {error}\n")


def _token(value: str) -> str:
    if not valid_wechat_token(value):
        raise CommandError("wechat token: must be 3 to 32 letters or digits (WeChat's rule)")
    return value


def init_values(args: argparse.Namespace, cwd: Path, ask: Callable[[str], str] | None) -> dict[str, object]:
    """The settings init writes: flags first, then answers (`ask` is None off a terminal), then defaults."""
    address = args.address or "127.0.0.1"
    port = args.port if args.port is not None else 8000
    host = f"[{address}]" if ":" in address else address
    public_url = args.public_url
    if public_url is None and ask is not None:
        public_url = _ask(
            "Public URL followers reach this server at (https://... behind nginx)",
            f"http://{host}:{port}",
            _check_public_url,
            ask,
        )
    token = args.wechat_token
    if token is None and ask is not None:
        token = _ask("WeChat Token (3-32 letters or digits)", random_wechat_token(), _token, ask)
    return {
        "address": address,
        "port": port,
        "public_url": _check_public_url(public_url or f"http://{host}:{port}"),
        "files_dir": str((cwd / (args.files_dir or "static_files")).resolve()),
        "data_dir": str((cwd / (args.data_dir or "data")).resolve()),
        "wechat.token": _token(token or random_wechat_token()),
    }


def _header(target: Path) -> str:
    return (
        f"tempdl.toml for this server, written by `tempdl init` on {datetime.date.today()} (tempdl {__version__}).\n"
        "Every key is shown with its default; a commented-out key keeps its default. Precedence:\n"
        "command-line flag > environment variable (named beside each key) > this file > default.\n"
        "It holds the WeChat token: keep it readable by the service's user only (mode 0640).\n"
        f"After editing, run `{invocation()} check --config {target}` before restarting the server."
    )


def write_config(target: Path, text: str, owner: Owner | None) -> None:
    """Write `text` to `target` through a temporary file, refusing it if `serve` would.

    The file is created with mode 0640 before anything goes in, so the token is never readable by
    others; it replaces `target` in one rename, so a failure leaves the old file as it was.
    """
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, CONFIG_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        load_settings({"config": str(temporary)}, {}, target.parent)
        if owner is not None:
            os.chown(temporary, -1, owner.gid)
        os.replace(temporary, target)
    except OSError as error:
        raise CommandError(f"cannot write {target}: {error.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)


def init(args: argparse.Namespace, settings: Settings | None = None, *, ask: Callable[[str], str] | None = None) -> int:
    """`init`: write a commented tempdl.toml, generate the secret, say what to paste into WeChat."""
    if args.example:
        sys.stdout.write(example_config())
        return 0
    cwd = Path.cwd()
    target = cwd / (args.config or os.environ.get("TEMPDL_CONFIG") or DEFAULT_CONFIG_NAME)
    if target.exists() and not args.force:
        raise CommandError(f"{target} already exists; add --force to replace it")
    owner = Owner.named(args.owner) if args.owner else None
    if ask is None and sys.stdin.isatty() and sys.stdout.isatty():
        ask = input
    values = init_values(args, cwd, ask)
    write_config(target, render_config(values, offer_classic_file=False, header=_header(target)), owner)

    settings = load_settings({"config": str(target)}, {}, cwd)
    key_path = settings.data_dir / SECRET_KEY_FILE
    had_secret = key_path.exists()
    ensure_secret_keys(settings)
    try:
        settings.files_dir.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            owner.take(settings.data_dir)
    except OSError as error:
        raise CommandError(f"{error.filename}: {error.strerror}") from None
    _print_init_report(target, settings, key_path, had_secret, owner)
    return 0


def _print_init_report(target: Path, settings: Settings, key_path: Path, had_secret: bool, owner: Owner | None) -> None:
    run = invocation()
    wechat_url = settings.public_url + settings.wechat.path
    secret = "kept the existing" if had_secret else "generated"
    owned = f", owned by {owner.name}" if owner else ""
    lines = [
        f"wrote {target} (mode 0640{f', group {owner.name}' if owner else ''})",
        f"{secret} signing secret {key_path} (mode 0600{owned}): back it up; links are signed with it",
        f"files to offer go in {settings.files_dir}",
        "",
        "In the WeChat admin console (mp.weixin.qq.com > 设置与开发 Settings and Development >",
        "基本配置 Basic Configuration > 服务器配置 Server Configuration > 修改配置 Modify), enter:",
        f"  服务器地址 URL:                 {wechat_url}",
        f"  令牌 Token:                     {settings.wechat.token}",
        "  消息加解密密钥 EncodingAESKey:  随机生成 Generate (only used in safe mode)",
        "  消息加解密方式 Encryption:      明文模式 Plaintext mode",
        "WeChat calls the URL to check the token when you submit: start the server first.",
    ]
    if urllib.parse.urlsplit(settings.public_url).port not in WECHAT_PORTS:
        lines.append(
            f"Note: WeChat only calls URLs on port 80 or 443; {settings.public_url} needs nginx in front "
            "(README: Deploy on a small VPS) and public_url changed to it."
        )
    lines += [
        "",
        "Next steps:",
        f"  1. Put files in {settings.files_dir}: each is offered under its own name, or give them keywords",
        f'     such as "Open Sesame" with a [[files]] table in {target}.',
        f"  2. {run} check --config {target}",
        f"  3. {run} serve --config {target}      (or: systemctl enable --now tempdl)",
        f"  4. {run} issue FILE_ID --config {target}   prints a link to try a download",
    ]
    if os.geteuid() == 0 and owner is None:
        lines.append(
            f"Running as root: if the service runs as another user, give it {settings.data_dir} "
            "(chown -R) and read access to the config, or run init again with --owner USER --force."
        )
    sys.stdout.write("\n".join(lines) + "\n")


# --- check -----------------------------------------------------------------------------------


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
    catalog = Catalog(settings.files_dir, settings.files)
    if not settings.files_dir.is_dir():
        found.problems.append(f"files_dir {settings.files_dir} is not a folder")
    offered = catalog.files()
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
        rows.append((entry.id, size, ", ".join(entry.keywords), entry.path))
    found.lines.append(f"files on offer from {settings.files_dir}: {len(offered)}")
    if offered:
        found.lines += table(rows)
    if not offered:
        found.problems.append(f"nothing is on offer: put files in {settings.files_dir} or list them in [[files]]")

    askers: dict[str, list[str]] = {}
    for entry in offered:
        for keyword in {normalize_keyword(k) for k in entry.keywords}:
            askers.setdefault(keyword, []).append(entry.id)
    for keyword, ids in askers.items():
        if len(ids) > 1:
            found.problems.append(
                f"keyword {keyword!r} asks for several files ({', '.join(ids)}); only the first is sent"
            )
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
    from tempdl.cli.serve import x_accel_ignored_limits

    if not settings.database_url.startswith("sqlite") and not settings.secret_keys:
        found.warnings.append(
            "database_url is a shared database but secret_keys is not set: every process would sign "
            "with its own generated key and refuse the others' links; set the same secret_keys everywhere"
        )
    for key in x_accel_ignored_limits(settings):
        found.warnings.append(f"{key} is nginx's job in x-accel mode (limit_conn, limit_rate: see deploy/nginx.conf)")


def check_database(settings: Settings, found: Findings) -> None:
    from sqlalchemy.engine import make_url

    from tempdl.audit.open import schema_revisions

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
