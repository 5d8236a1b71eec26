"""What every tempdl handler shares: refusal pages in two languages, JSON for clients that ask."""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from tornado.web import HTTPError, RequestHandler

from tempdl.links.refusals import Refusal
from tempdl.web.accept import prefers_json
from tempdl.web.access_log import quoted

log = logging.getLogger("tempdl.http")


if TYPE_CHECKING:
    _HandlerBase = RequestHandler  # what the mixins are mixed into, for the type checker
else:
    _HandlerBase = object


class RefusalMixin(_HandlerBase):
    """Answers refusals and errors as a bilingual HTML page, or SPEC's JSON when that is preferred."""

    request: Any

    def wants_json(self) -> bool:
        return prefers_json(self.request.headers.get("Accept", ""))

    def write_refusal(self, refusal: Refusal, *, status: int | None = None) -> None:
        self.clear()
        self.set_status(status or refusal.status)
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        if refusal.retry_after:
            self.set_header("Retry-After", str(refusal.retry_after))
        if self.request.method == "HEAD":
            return
        if self.wants_json():
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.write(json.dumps(refusal.as_json(), ensure_ascii=False))
        else:
            self.set_header("Content-Type", "text/html; charset=UTF-8")
            self.write(self.render_string("refusal.html", refusal=refusal, request_id=self.request_id))

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """Decode a URL part or query argument; bytes that are not UTF-8 become U+FFFD.

        Tornado's own version answers 400 and logs the first 40 bytes of the value: for a
        download that is the token (a credential) in the log and a request with no audit row.
        Decoded leniently, a mangled token or signature simply fails its check like any other
        wrong value (403, recorded).
        """
        return value.decode("utf-8", errors="replace")

    def log_exception(self, typ, value, tb) -> None:
        """Log errors with the request id and the route, never the URI (it may hold a token)."""
        if isinstance(value, HTTPError):
            if value.log_message:
                log.warning(
                    "event=http_error request_id=%s status=%d detail=%s",
                    self.request_id,
                    value.status_code,
                    quoted(value.log_message % value.args if value.args else value.log_message),
                )
        else:
            log.error(
                "event=uncaught_exception request_id=%s error=%s",
                self.request_id,
                typ.__name__,
                exc_info=(typ, value, tb),
            )

    @property
    def request_id(self) -> str:
        if not hasattr(self.request, "tempdl_request_id"):
            self.request.tempdl_request_id = uuid.uuid4().hex[:12]
        return self.request.tempdl_request_id


class BaseHandler(RefusalMixin, RequestHandler):
    """A plain handler whose unexpected errors become a bilingual page with a request id."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        write_error_page(self, status_code)


_GENERIC_ERRORS = {
    400: ("请求无效。", "Bad request."),
    403: ("拒绝访问。", "Forbidden."),
    404: ("页面不存在。", "Not found."),
    405: ("不支持此请求方法。", "Method not allowed."),
}


def write_error_page(handler: RefusalMixin, status_code: int) -> None:
    """Render an HTTP error in both languages; 5xx pages carry the request id that is in the log."""
    chinese, english = _GENERIC_ERRORS.get(
        status_code, ("服务器内部错误，请稍后再试。", "Internal server error; please try again later.")
    )
    if status_code >= 500:
        log.error("event=error_page request_id=%s status=%d", handler.request_id, status_code)
    handler.write_refusal(Refusal("error", status_code, None, chinese, english))
