"""`init`: set up a server without reading the source.

It writes a commented tempdl.toml with a random WeChat token, generates the signing secret, and
prints what to paste into the WeChat admin console. It never overwrites a file unless told to,
and it asks questions only on a terminal, so it also works from provisioning scripts.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pwd
import secrets
import string
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tempdl import __version__
from tempdl.config.keys import default, default_public_url
from tempdl.config.load import DEFAULT_CONFIG_NAME, load_settings
from tempdl.config.secret import SECRET_KEY_FILE, ensure_secret_keys
from tempdl.config.settings import Settings
from tempdl.config.toml import example_config, render_config
from tempdl.errors import CommandError, ConfigError

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


@dataclass(frozen=True)
class Owner:
    """The account the service runs as (`--owner`): it gets the data folder and the secret."""

    name: str
    uid: int
    gid: int

    @classmethod
    def named(cls, name: str) -> Owner:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise CommandError(f"--owner: there is no user {name!r} (create it first: see docs/deploy.md)") from None
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
    address = args.address or default("address")
    port = args.port if args.port is not None else default("port")
    public_url = args.public_url
    if public_url is None and ask is not None:
        public_url = _ask(
            "Public URL followers reach this server at (https://... behind nginx)",
            default_public_url(address, port),
            _check_public_url,
            ask,
        )
    token = args.wechat_token
    if token is None and ask is not None:
        token = _ask("WeChat Token (3-32 letters or digits)", random_wechat_token(), _token, ask)
    return {
        "address": address,
        "port": port,
        "public_url": _check_public_url(public_url or default_public_url(address, port)),
        "files_dir": str((cwd / (args.files_dir or default("files_dir"))).resolve()),
        "data_dir": str((cwd / (args.data_dir or default("data_dir"))).resolve()),
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
            "(docs/deploy.md) and public_url changed to it."
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
