"""Keep request contents out of Tornado's own log lines.

Tornado logs a request it cannot parse as `Malformed HTTP message from <ip>: <error>`, and some of
those errors quote what the client sent: `Invalid header value 'http://x/api/get_file/<token>\\x01'`,
`Only integer Content-Length is allowed: <anything>`. That is a download token or an openid in
the log. The filter keeps the line (operators want to see malformed traffic) but cuts the error
down to its kind, before the first quote or colon.
"""

from __future__ import annotations

import logging
import re

MALFORMED_MESSAGE = "Malformed HTTP message from %s: %s"
_QUOTED_PART = re.compile(r"[:'\"]")


def kind_of(error: object) -> str:
    """`Invalid header value 'secret'` -> `Invalid header value`."""
    text = _QUOTED_PART.split(str(error), maxsplit=1)[0].strip()
    return text or type(error).__name__


class MalformedRequestFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == MALFORMED_MESSAGE and isinstance(record.args, tuple) and len(record.args) == 2:
            peer, error = record.args
            record.args = (peer, kind_of(error))
        return True


def install() -> None:
    """Attach the filter to Tornado's general logger, once."""
    logger = logging.getLogger("tornado.general")
    if not any(isinstance(existing, MalformedRequestFilter) for existing in logger.filters):
        logger.addFilter(MalformedRequestFilter())
