"""Writing a commented `tempdl.toml`: the one text behind `tempdl.toml.example` and `init`.

Every config key is documented here once. `render_config` writes the keys it is given as live
settings and every other key commented out at its default, so an operator sees all there is to
set, with the reason, in the file itself. The repository's `tempdl.toml.example` is
`render_config(**EXAMPLE)` (a test keeps the two equal), and it is therefore inside the pyz too:
`tempdl init --example` prints it.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tempdl.errors import ConfigError

WIDTH = 100


@dataclass(frozen=True)
class Documented:
    """One key as the file shows it: dotted name, default as TOML text, and why one would set it."""

    name: str
    default: str
    meaning: str

    @property
    def section(self) -> str | None:
        return self.name.split(".", 1)[0] if "." in self.name else None

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[-1]

    @property
    def env(self) -> str:
        return "TEMPDL_" + self.name.replace(".", "_").upper()


KEYS = (
    Documented(
        "address",
        '"127.0.0.1"',
        'Listen address. Keep 127.0.0.1 behind nginx (recommended, nginx does TLS); "0.0.0.0" listens on '
        "every interface. Flag: --address.",
    ),
    Documented("port", "8000", "Listen port. Flag: --port."),
    Documented(
        "public_url",
        '"http://<address>:<port>"',
        'Prefix of every link handed out, as followers reach this server, e.g. "https://dl.example.com". '
        "The WeChat server URL is public_url + wechat.path.",
    ),
    Documented(
        "files_dir",
        '"static_files"',
        "The only folder files are ever served from. Relative paths are taken from the working directory.",
    ),
    Documented(
        "data_dir",
        '"data"',
        "Where the SQLite audit database and the generated secret.key live. Flag: --data-dir.",
    ),
    Documented(
        "database_url",
        '"sqlite:///<data_dir>/tempdl.sqlite3"',
        'Any SQLAlchemy URL, e.g. "postgresql+psycopg://tempdl@db/tempdl" for several servers '
        "(the pyz bundles the PostgreSQL driver only when built with --with-postgresql).",
    ),
    Documented(
        "secret_keys",
        '["<generated once into data_dir/secret.key>"]',
        "Link signing keys, 16+ characters each. The last one signs, all of them verify: append a new key "
        "to rotate, drop the old one once its links have expired.",
    ),
    Documented("link_ttl", "600", "Seconds a link stays valid."),
    Documented(
        "resume_grace",
        "3600",
        "Seconds after expiry during which a download already started may still be resumed (Range).",
    ),
    Documented(
        "shutdown_grace",
        "30",
        "Seconds downloads in flight get to finish after SIGTERM. Keep the unit's TimeoutStopSec above it.",
    ),
    Documented("timezone", '"UTC"', 'Time zone of the operator\'s reports (day buckets), e.g. "Asia/Shanghai".'),
    Documented(
        "serve_mode",
        '"direct"',
        '"direct": Python streams the bytes. "x-accel": nginx sends them (X-Accel-Redirect); tempdl '
        "still checks the link and keeps the audit row.",
    ),
    Documented(
        "x_accel_prefix",
        '"/_tempdl_files/"',
        'With serve_mode = "x-accel": the nginx `internal` location that maps to files_dir.',
    ),
    Documented(
        "sendfile",
        "true",
        "Zero-copy sendfile() for plain-HTTP downloads (the kernel copies file to socket); false copies "
        "through Python.",
    ),
    Documented("wechat.path", '"/wechat"', "URL path of the WeChat endpoint."),
    Documented(
        "wechat.token",
        '"<none>"',
        "The Token from the Official Account's server configuration (3-32 letters or digits). Without it "
        'the WeChat endpoint answers 503 "not configured".',
    ),
    Documented(
        "wechat.max_clock_skew",
        "300",
        "Seconds a message's timestamp may differ from this server's clock (replay protection).",
    ),
    Documented("wechat.app_id", '"<none>"', "The AppID; needed for safe (encrypted) and compatible mode."),
    Documented(
        "wechat.encoding_aes_key",
        '"<none>"',
        "The 43-character EncodingAESKey, for safe (encrypted) mode; needs wechat.app_id.",
    ),
    Documented(
        "wechat.welcome",
        '"<a greeting in Chinese and English, then the keywords>"',
        "What a new follower is told on subscribing; {keywords} in it becomes the list of keywords.",
    ),
    Documented(
        "admin.password",
        '"<none>"',
        'HTTP Basic password (user "admin") for /admin, the operator\'s dashboard. Unset: /admin answers 404.',
    ),
    Documented(
        "limits.max_concurrent_downloads",
        "0",
        "Downloads streaming at once; over it a download gets 503 with Retry-After. 0: no cap (as for every "
        "limit below).",
    ),
    Documented("limits.rate_per_download", "0", "Bytes per second for one download."),
    Documented("limits.total_rate", "0", "Bytes per second for all downloads together, shared fairly."),
    Documented("limits.recipient_daily_bytes", "0", "Bytes one recipient may download per day; over it: 429."),
    Documented(
        "limits.issues_per_recipient_per_hour",
        "0",
        "Links one follower may be sent per hour; over it the reply says when to try again.",
    ),
    Documented(
        "limits.max_downloads",
        "0",
        "Complete downloads per link (a [[files]] entry's own max_downloads wins); used up: 410.",
    ),
)

SECTION_TITLES = {
    "wechat": "The WeChat Official Account (mp.weixin.qq.com: Settings and Development > Basic Configuration).",
    "admin": "The operator's dashboard.",
    "limits": "Bandwidth and link limits.",
}

_FILES_HELP = (
    "Files on offer. Without any [[files]] table, every regular file directly in files_dir is offered "
    "under its own name (that name is its id and its keyword). With [[files]] tables, only these are: "
    "id (a URL-safe word, used by `issue`), path (relative to files_dir), keywords (matched ignoring case, "
    "surrounding spaces and full-width forms), and optionally name (the download's file name), ttl, "
    "max_downloads, description."
)
_CLASSIC_FILE = (
    ("id", '"InstMsiW.exe"'),
    ("path", '"InstMsiW.exe"'),
    ("keywords", '["Open Sesame", "芝麻开门"]'),
    ("description", '"Windows Installer 2.0 redistributable"'),
)

EXAMPLE_HEADER = (
    'tempdl.toml.example: the classic setup, keyword "Open Sesame" offering InstMsiW.exe.\n'
    "Copy it to tempdl.toml (or point --config / TEMPDL_CONFIG at it) and edit. Every key is shown with\n"
    "its default; a commented-out key keeps its default. Precedence: command-line flag > environment\n"
    "variable (named beside each key) > this file > default. Regenerate with\n"
    "`python server.py init --example > tempdl.toml.example`."
)


def toml_value(value: object) -> str:
    """A TOML literal for a string, whole number, boolean or list of strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are valid in TOML basic strings
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in textwrap.wrap(text, WIDTH - 2)]


def _key_lines(key: Documented, values: Mapping[str, object]) -> list[str]:
    lines = _comment(f"{key.meaning} Env: {key.env}.")
    if key.name in values:
        lines.append(f"{key.short_name} = {toml_value(values[key.name])}")
    else:
        lines.append(f"# {key.short_name} = {key.default}")
    return lines


def render_config(
    values: Mapping[str, object],
    *,
    offer_classic_file: bool,
    header: str,
    keys: Sequence[Documented] = KEYS,
) -> str:
    """A complete commented tempdl.toml; `values` (dotted names) are set, other keys commented out.

    `offer_classic_file` writes the "Open Sesame" → InstMsiW.exe `[[files]]` table live; otherwise
    it is there commented out, as an example to copy.
    """
    unknown = set(values) - {key.name for key in keys}
    if unknown:
        raise ConfigError(f"config key '{sorted(unknown)[0]}': not a documented key")
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    section: str | None = None
    for key in keys:
        if key.section != section:
            section = key.section
            lines += ["", *_comment(SECTION_TITLES.get(section or "", "")), f"[{section}]"]
        lines += ["", *_key_lines(key, values)]
    lines += ["", "", *_comment(_FILES_HELP)]
    table = ["[[files]]", *(f"{name} = {value}" for name, value in _CLASSIC_FILE)]
    lines += table if offer_classic_file else [f"# {line}" for line in table]
    return "\n".join(lines) + "\n"


def example_config() -> str:
    """The text of tempdl.toml.example."""
    return render_config({}, offer_classic_file=True, header=EXAMPLE_HEADER)
