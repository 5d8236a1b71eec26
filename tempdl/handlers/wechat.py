"""The WeChat endpoint: the GET handshake and POSTed messages, answered with passive replies.

Order of checks on a POST: body size (413), signature (403, nothing issued), XML (400), then the
conversation. The signature is compared in constant time; the openid in the query string and the
message never reach the log.
"""

from __future__ import annotations

import logging

from tornado.web import stream_request_body

from tempdl.audit import AuditUnavailable
from tempdl.config import WeChatSettings
from tempdl.conversation import Conversation
from tempdl.handlers.base import BaseHandler
from tempdl.timeutil import Clock
from tempdl.wechat.messages import MalformedMessage, parse_message, render_text_reply
from tempdl.wechat.signature import sha1_signature, signatures_match

log = logging.getLogger("tempdl.wechat")

MAX_BODY_BYTES = 64 * 1024


@stream_request_body
class WeChatHandler(BaseHandler):
    def initialize(self, *, wechat: WeChatSettings, conversation: Conversation, clock: Clock) -> None:
        self.wechat = wechat
        self.conversation = conversation
        self.clock = clock
        self.body = bytearray()
        self.too_large = False

    def prepare(self) -> None:
        if not self.wechat.token:
            self.set_status(503)
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish("WeChat endpoint not configured: set wechat.token. 未配置微信 Token。")
            return
        declared = self.request.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            self.too_large = True
            self.send_error(413)

    def data_received(self, chunk: bytes) -> None:
        if self.too_large:
            return
        self.body.extend(chunk)
        if len(self.body) > MAX_BODY_BYTES:
            self.too_large = True
            self.body.clear()

    def _signed_by_wechat(self) -> bool:
        expected = sha1_signature(
            self.wechat.token or "",
            self.get_query_argument("timestamp", ""),
            self.get_query_argument("nonce", ""),
        )
        return signatures_match(expected, self.get_query_argument("signature", None))

    def get(self) -> None:
        """The server-URL handshake: echo `echostr` back when the signature is WeChat's."""
        if not self._signed_by_wechat():
            log.warning("handshake refused: bad signature")
            self.send_error(403)
            return
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.write(self.get_query_argument("echostr", ""))

    async def post(self) -> None:
        if self.too_large:
            self.send_error(413)
            return
        if not self._signed_by_wechat():
            log.warning("message refused: bad signature")
            self.send_error(403)
            return
        try:
            message = parse_message(bytes(self.body))
        except MalformedMessage as error:
            log.warning("message refused: %s", error)
            self.send_error(400)
            return
        now = self.clock()
        try:
            text = await self.conversation.reply_to(message, now)
        except AuditUnavailable as error:
            log.error("cannot issue a link: audit database unavailable (%s)", error)
            text = "服务暂时不可用，请稍后再试。The service is temporarily unavailable; please try again shortly."
        if text is None:
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.write("success")
            return
        self.set_header("Content-Type", "application/xml; charset=UTF-8")
        self.write(render_text_reply(message, text, int(now.timestamp())))
