"""Log values that keep a line greppable as key=value, whatever text they carry.

Server log lines read `event=NAME key=value ...` so `journalctl -u tempdl | grep event=refused`
finds them. A value with spaces, quotes or `=` (a file path, an error message) is JSON-quoted so
it stays one token.
"""

from __future__ import annotations

import json


def quoted(value: object) -> str:
    """`value` as one key=value token: bare when it can be, JSON-quoted otherwise."""
    text = str(value)
    if text and not any(c.isspace() or c in '"=\\' for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)
