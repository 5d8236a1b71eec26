"""Value parsers: each takes a raw value (TOML value, or the text of a flag or environment variable)
and returns the typed one, or raises `ValueError` saying what the value must be.

The loader adds the key's name to the message, so a parser only says what is wrong with the value.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from pathlib import Path
from typing import Any


def non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, str):
        value = value.strip()
        if not re.fullmatch(r"\d+", value):
            raise ValueError(f"must be a whole number >= 0, not {value!r}")
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a whole number >= 0, not {value!r}")
    return value


def positive_int(value: Any) -> int:
    number = non_negative_int(value)
    if number < 1:
        raise ValueError(f"must be a whole number >= 1, not {number}")
    return number


def port(value: Any) -> int:
    number = non_negative_int(value)
    if number > 65535:
        raise ValueError(f"must be a port number 0-65535, not {number}")
    return number


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def optional_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value.strip() or None


def folder(value: Any) -> Path:
    """A folder, as written; the loader takes a relative one from the working directory."""
    return Path(text(value))


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"must be true or false, not {value!r}")


def url_path(value: Any) -> str:
    path = text(value)
    if not path.startswith("/") or any(c in path for c in "?#\\ "):
        raise ValueError(f"must be a URL path starting with '/', not {path!r}")
    return path


def public_url(value: Any) -> str:
    url = text(value)
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
        raise ValueError(f"must be an http:// or https:// URL, not {url!r}")
    return url.rstrip("/")


def timezone(value: Any) -> str:
    name = text(value)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use a name like Asia/Shanghai)") from None
    return name


_PLAIN_FILE_URL = re.compile(r"sqlite:///(?P<path>[^?#%]+)")


def sqlite_file(database_url: str) -> str | None:
    """The file of a plain `sqlite:///path` URL, as SQLAlchemy reads it; None for anything else.

    A serving process reads this without SQLAlchemy; a URL with a query, an escape or another
    database is left to SQLAlchemy (a test holds this to `make_url`'s reading).
    """
    match = _PLAIN_FILE_URL.fullmatch(database_url)
    return None if match is None or match["path"] == ":memory:" else match["path"]


def database_url(value: Any) -> str:
    """A SQLAlchemy URL; plain `postgresql://` (and Heroku-style `postgres://`) mean psycopg 3.

    SQLAlchemy's default PostgreSQL driver is psycopg2, which tempdl does not install; operators
    paste the URL their provider gives them, so we pick the driver we ship. A plain SQLite file
    URL is taken as it is, so a server on one never imports SQLAlchemy to read its settings.
    """
    given = text(value)
    if sqlite_file(given) is not None:
        return given
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(given)
    except ArgumentError:
        raise ValueError("must be a URL like sqlite:///data/tempdl.sqlite3 or postgresql://user@host/db") from None
    if url.drivername in {"postgresql", "postgres"}:
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return given


def serve_mode(value: Any) -> str:
    mode = text(value)
    if mode not in {"direct", "x-accel"}:
        raise ValueError(f"must be 'direct' or 'x-accel', not {mode!r}")
    return mode


def secret_keys(value: Any) -> tuple[str, ...]:
    """A list of keys; from a flag or the environment, one string with the keys comma-separated."""
    keys = value.split(",") if isinstance(value, str) else value
    if not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys):
        raise ValueError("must be a list of strings")
    keys = tuple(k.strip() for k in keys if k.strip())
    if not keys:
        raise ValueError("must hold at least one key")
    if any(len(k) < 16 for k in keys):
        raise ValueError("every key must be at least 16 characters long")
    return keys


def encoding_aes_key(value: Any) -> str | None:
    key = optional_text(value)
    if key is not None and not re.fullmatch(r"[A-Za-z0-9]{43}", key):
        raise ValueError("must be the 43-character EncodingAESKey from the WeChat admin console")
    return key


def address_ranges(value: Any) -> tuple[str, ...]:
    """Addresses or CIDR ranges (`10.0.0.0/8`, `::1`); from a flag or the environment, comma-separated."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ValueError("must be a list of addresses or CIDR ranges")
    ranges = []
    for item in (item.strip() for item in items if item.strip()):
        try:
            ranges.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR range") from None
    return tuple(ranges)
