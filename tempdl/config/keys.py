"""The one table of config keys: name, default, parser, help text, and the flag that sets it.

Everything else about a key is derived from its row: the environment variable (`TEMPDL_` and the
dotted name in capitals), the loader's precedence (flag > environment > file > default), the
commented `tempdl.toml` that `init` writes, `tempdl.toml.example` and `docs/configuration.md`.
To add a key, add its row here and its typed attribute to `Settings` (a test names the one you
forgot), then run `python -m tempdl.config.docs` to regenerate the example and the docs.

Rows are in file order: top-level keys first, then each section's keys together, because a
TOML key written after a `[section]` header belongs to that section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tempdl.config import parsers
from tempdl.config.fields import FileField, Key


def default_public_url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


def default_database_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'tempdl.sqlite3'}"


KEYS: tuple[Key, ...] = (
    Key(
        "address",
        "127.0.0.1",
        parsers.text,
        'Listen address. Keep 127.0.0.1 behind nginx (recommended, nginx does TLS); "0.0.0.0" listens on '
        "every interface.",
        flag="--address",
    ),
    Key("port", 8000, parsers.port, "Listen port.", flag="--port"),
    Key(
        "public_url",
        None,
        parsers.public_url,
        'Prefix of every link handed out, as followers reach this server, e.g. "https://dl.example.com". '
        "The WeChat server URL is public_url + wechat.path.",
        shown="http://<address>:<port>",
    ),
    Key(
        "files_dir",
        Path("static_files"),
        parsers.folder,
        "The only folder files are ever served from. Relative paths are taken from the working directory.",
    ),
    Key(
        "data_dir",
        Path("data"),
        parsers.folder,
        "Where the SQLite audit database and the generated secret.key live.",
        flag="--data-dir",
    ),
    Key(
        "database_url",
        None,
        parsers.database_url,
        'Any SQLAlchemy URL, e.g. "postgresql+psycopg://tempdl@db/tempdl" for several servers '
        "(the pyz bundles the PostgreSQL driver only when built with --with-postgresql).",
        shown="sqlite:///<data_dir>/tempdl.sqlite3",
    ),
    Key(
        "secret_keys",
        (),
        parsers.secret_keys,
        "Link signing keys, 16+ characters each. The last one signs, all of them verify: append a new key "
        "to rotate, drop the old one once its links have expired.",
        shown=["<generated once into data_dir/secret.key>"],
        secret=True,
    ),
    Key("link_ttl", 600, parsers.positive_int, "Seconds a link stays valid (at least 1)."),
    Key(
        "resume_grace",
        3600,
        parsers.non_negative_int,
        "Seconds after expiry during which a download already started may still be resumed (Range).",
    ),
    Key(
        "shutdown_grace",
        30,
        parsers.non_negative_int,
        "Seconds downloads in flight get to finish after SIGTERM. Keep the unit's TimeoutStopSec above it.",
    ),
    Key(
        "timezone",
        "UTC",
        parsers.timezone,
        'Time zone of the operator\'s reports (day buckets), e.g. "Asia/Shanghai".',
    ),
    Key(
        "serve_mode",
        "direct",
        parsers.serve_mode,
        '"direct": Python streams the bytes. "x-accel": nginx sends them (X-Accel-Redirect); tempdl '
        "still checks the link and keeps the audit row.",
    ),
    Key(
        "x_accel_prefix",
        "/_tempdl_files/",
        parsers.url_path,
        'With serve_mode = "x-accel": the nginx `internal` location that maps to files_dir.',
    ),
    Key(
        "trusted_proxies",
        ("127.0.0.1", "::1"),
        parsers.address_ranges,
        "Addresses or CIDR ranges of reverse proxies. Only from them are X-Real-IP and X-Forwarded-For "
        "believed (audit client_ip, the admin lockout); for X-Forwarded-For the client is the right-most "
        "address that is not a trusted proxy. From anyone else those headers are ignored.",
    ),
    Key(
        "max_connections",
        None,
        parsers.positive_int,
        "Connections held at once; over it new ones are refused at once, with one log line per incident.",
        shown="<the open-files limit minus a quarter (at least 64) for files and the database>",
    ),
    Key(
        "sendfile",
        True,
        parsers.boolean,
        "Zero-copy sendfile() for plain-HTTP downloads (the kernel copies file to socket); false copies "
        "through Python.",
    ),
    Key("wechat.path", "/wechat", parsers.url_path, "URL path of the WeChat endpoint."),
    Key(
        "wechat.token",
        None,
        parsers.optional_text,
        "The Token from the Official Account's server configuration (3-32 letters or digits). Without it "
        'the WeChat endpoint answers 503 "not configured".',
        secret=True,
    ),
    Key(
        "wechat.max_clock_skew",
        300,
        parsers.non_negative_int,
        "Seconds a message's timestamp may differ from this server's clock (replay protection).",
    ),
    Key(
        "wechat.app_id",
        None,
        parsers.optional_text,
        "The AppID; needed for safe (encrypted) and compatible mode.",
    ),
    Key(
        "wechat.encoding_aes_key",
        None,
        parsers.encoding_aes_key,
        "The 43-character EncodingAESKey, for safe (encrypted) mode; needs wechat.app_id.",
        secret=True,
    ),
    Key(
        "wechat.welcome",
        None,
        parsers.optional_text,
        "What a new follower is told on subscribing; {keywords} in it becomes the list of keywords.",
        shown="<a greeting in Chinese and English, then the keywords>",
    ),
    Key(
        "admin.password",
        None,
        parsers.optional_text,
        'HTTP Basic password (user "admin") for /admin, the operator\'s dashboard. Unset: /admin answers 404.',
        secret=True,
    ),
    Key(
        "limits.max_concurrent_downloads",
        0,
        parsers.non_negative_int,
        "Downloads streaming at once; over it a download gets 503 with Retry-After. 0: no cap (as for every "
        "limit below).",
    ),
    Key("limits.rate_per_download", 0, parsers.non_negative_int, "Bytes per second for one download."),
    Key(
        "limits.total_rate",
        0,
        parsers.non_negative_int,
        "Bytes per second for all downloads together, shared fairly.",
    ),
    Key(
        "limits.recipient_daily_bytes",
        0,
        parsers.non_negative_int,
        "Bytes one recipient may download per day; over it: 429.",
    ),
    Key(
        "limits.total_daily_bytes",
        0,
        parsers.non_negative_int,
        "Bytes the whole server may send per day (report time zone), downloads still running included; "
        "spent: downloads 503 with Retry-After at the next day, WeChat says when links come back and "
        "issues none.",
    ),
    Key(
        "limits.total_monthly_bytes",
        0,
        parsers.non_negative_int,
        "The same per calendar month: a VPS's monthly traffic allowance.",
    ),
    Key(
        "limits.issues_per_recipient_per_hour",
        0,
        parsers.non_negative_int,
        "Links one follower may be sent per hour; over it the reply says when to try again.",
    ),
    Key(
        "limits.max_downloads",
        0,
        parsers.non_negative_int,
        "Complete downloads per link (a [[files]] entry's own max_downloads wins); used up: 410.",
    ),
)

BY_NAME = {key.name: key for key in KEYS}

SECTIONS = {
    "wechat": "The WeChat Official Account (mp.weixin.qq.com: Settings and Development > Basic Configuration).",
    "admin": "The operator's dashboard.",
    "limits": "Bandwidth and link limits.",
}
"""Each section's title in the commented file and the docs; a key's section must be listed here."""


def default(name: str) -> Any:
    """The default of key `name`, for the attribute declarations in `Settings`."""
    return BY_NAME[name].default


FILES_HELP = (
    "Files on offer. Without any [[files]] table, every regular file directly in files_dir is offered "
    "under its own name (that name is its id and its keyword). With [[files]] tables, only these are."
)

FILE_FIELDS: tuple[FileField, ...] = (
    FileField("id", "a URL-safe word (letters, digits, _ . ~ -), used by `issue` and by a menu click.", required=True),
    FileField("path", "the file, relative to files_dir (no '..').", required=True),
    FileField(
        "keywords",
        "the words that ask for it, typed or spoken, matched ignoring case, full-width forms, and "
        "punctuation, quotes, brackets, emoji and zero-width characters around them; two that match "
        "alike are refused; without any, the file is offered by menu, QR scene or `issue` only.",
    ),
    FileField(
        "name",
        "the download's file name (UTF-8 allowed, at most 255 bytes); default: the file's own name.",
    ),
    FileField("ttl", "seconds its links stay valid; default: link_ttl."),
    FileField("max_downloads", "complete downloads per link; default: limits.max_downloads."),
    FileField("description", "shown after its keywords in the list a follower is sent."),
    FileField(
        "scenes",
        "parametric QR-code scene strings (1-64 characters, see docs/wechat.md); a follower who scans "
        "one, or follows the account by it, is sent this file's link.",
    ),
)
