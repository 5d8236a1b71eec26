"""The access log: one key=value line per request, with no token or openid in it.

Log values keep a line greppable as key=value, whatever text they carry.

Server log lines read `event=NAME key=value ...` so `journalctl -u tempdl | grep event=refused`
finds them. A value with spaces, quotes or `=` (a file path, an error message) is JSON-quoted so
it stays one token.
"""

from __future__ import annotations

import json
import logging
import re

from tornado.web import RequestHandler

from tempdl.links.issuing import DOWNLOAD_ROUTE

access_log = logging.getLogger("tempdl.access")


_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Control characters (C0, DEL, C1 with U+0085 NEL) and the Unicode line and paragraph separators:
some log shippers and viewers start a new line at any of them, which would let a value forge one."""


def quoted(value: object) -> str:
    """`value` as one key=value token: bare when it can be, JSON-quoted otherwise, with every
    character that could break the line written as a `\\uXXXX` escape."""
    text = str(value)
    if text and not any(c.isspace() or c in '"=\\' for c in text) and not _LINE_BREAKING.search(text):
        return text
    return _LINE_BREAKING.sub(lambda m: f"\\u{ord(m.group(0)):04x}", json.dumps(text, ensure_ascii=False))


# Near misses of the download route still carry a live token: `//api/get_file/…`, `/API/GET_FILE/…`.
_DOWNLOAD_ROUTE_ANYWHERE = re.compile(r"get(?:_|%5f)file", re.IGNORECASE)
# What a token looks like (payload.timestamp.signature), wherever someone pasted one.
_TOKEN_SHAPED = re.compile(r"[\w-]+\.[\w-]{4,}\.[\w-]{20,}")


def safe_path(path: str) -> str:
    """The request path as it may be logged: a download token is a credential, so it is cut."""
    if path.startswith(DOWNLOAD_ROUTE):
        return DOWNLOAD_ROUTE + "…"
    route = _DOWNLOAD_ROUTE_ANYWHERE.search(path)
    if route:
        return path[: route.end()] + "/…"
    return _TOKEN_SHAPED.sub("…", path[:200])


def log_request(handler: RequestHandler) -> None:
    """One line per request, key=value, without query strings (they carry openids) or tokens."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    level = getattr(handler, "access_log_level", None) or level
    fields = [
        f"method={quoted(handler.request.method)}",
        f"path={quoted(safe_path(handler.request.path))}",
        f"status={status}",
        f"ms={1000.0 * handler.request.request_time():.1f}",
        f"ip={quoted(handler.request.remote_ip)}",
    ]
    attempt = getattr(handler, "attempt", None)
    if attempt is not None and attempt.id is None:
        fields.append("attempt=unrecorded")  # the row could not be written: what it would have said is no fact
    elif attempt is not None:
        fields += [f"attempt={attempt.id}", f"outcome={attempt.outcome}", f"bytes={attempt.bytes_sent}"]
    access_log.log(level, "event=request %s", " ".join(fields))
