"""The WeChat endpoint: the GET handshake and POSTed messages, answered with passive replies.

Order of checks on a POST, each refusal logged with its reason (never the openid or the text), at
most once a minute per reason (`LogLimiter`: an unsigned flood costs the sender nothing):

1. body over 64 KiB: 413, answered before the body is read (`tempdl.web.oversized`), so the
   handler gets the whole body at once and need not stream it;
2. who sent it: plain mode checks `signature` (token, timestamp, nonce); safe and compatible mode
   (`encrypt_type=aes`) check `msg_signature`, which also covers the encrypted body, then decrypt
   (403 forged, 400 malformed). When AES is asked for but not configured here, either signature
   (the token alone checks both) must still hold before the 503 that names the missing keys;
3. replay: the query `timestamp` must be within `wechat.max_clock_skew` of now (403), POST only,
   so WeChat's published handshake example keeps working;
4. the message XML (400 for anything unreadable or missing a field, never a 500);
5. the nonce: new, or reused by a resend of the very same message (else 403, a replay); the GET
   handshake spends its nonce too, so its query (kept in proxies' access logs) is no POST;
6. the reply: a resend shares the first try's reply (one issuance however many tries), computed
   within `reply_deadline` seconds or replaced by a polite "busy" text before WeChat gives up.

In AES mode the reply is encrypted too; `success` (nothing to say) is sent as it is.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import secrets
from collections.abc import Awaitable
from typing import Any

from tornado.web import HTTPError

from tempdl.config.settings import WeChatSettings
from tempdl.errors import AuditUnavailable
from tempdl.timeutil import Clock
from tempdl.web.access_log import quoted
from tempdl.web.handlers.base import BaseHandler
from tempdl.web.log_limit import LogLimiter
from tempdl.wechat.conversation import UNAVAILABLE_TEXT, Conversation
from tempdl.wechat.crypto import InvalidAppId, InvalidMessageSignature, MessageCrypto, WeChatCryptoError, encrypted_part
from tempdl.wechat.messages import (
    OPENID_PATTERN,
    IncomingMessage,
    MalformedMessage,
    parse_message,
    render_text_reply,
)
from tempdl.wechat.replay import NonceLedger, RetryMemory, retry_window, timestamp_is_fresh
from tempdl.wechat.signature import query_signed, sha1_signature, signatures_match

log = logging.getLogger("tempdl.wechat")

REPLY_DEADLINE_SECONDS = 3.0
"""WeChat waits 5 s for a reply; 3 s leaves room for the network and still beats its resend."""
ECHOSTR = re.compile(r"[!-~]{1,128}")
"""What the handshake echoes: printable ASCII (WeChat sends ~19 digits), never markup-sized."""

ReplyMemory = RetryMemory[tuple[str, ...], "str | None"]


def wechat_handler_arguments(
    wechat: WeChatSettings, conversation: Conversation, clock: Clock, retries: ReplyMemory
) -> dict[str, Any]:
    """What `WeChatHandler.initialize` needs; the memories live as long as the app does.

    The reply memory is made to last as long as a signed request can be accepted again (see
    `retry_window`): a request replayed within the window then gets the same answer, not a link.
    """
    retries.last_at_least(retry_window(wechat.max_clock_skew))
    crypto = None
    if wechat.token and wechat.encoding_aes_key and wechat.app_id:
        crypto = MessageCrypto(wechat.token, wechat.encoding_aes_key, wechat.app_id)
    return {
        "wechat": wechat,
        "conversation": conversation,
        "clock": clock,
        "crypto": crypto,
        "retries": retries,
        "nonces": NonceLedger(window=wechat.max_clock_skew) if wechat.max_clock_skew else None,
        "reply_deadline": REPLY_DEADLINE_SECONDS,
        "log_limiter": LogLimiter(),
    }


class WeChatHandler(BaseHandler):
    def initialize(
        self,
        *,
        wechat: WeChatSettings,
        conversation: Conversation,
        clock: Clock,
        retries: ReplyMemory,
        crypto: MessageCrypto | None = None,
        nonces: NonceLedger | None = None,
        reply_deadline: float = REPLY_DEADLINE_SECONDS,
        log_limiter: LogLimiter | None = None,
    ) -> None:
        self.wechat = wechat
        self.conversation = conversation
        self.clock = clock
        self.crypto = crypto
        self.retries = retries
        self.nonces = nonces
        self.reply_deadline = reply_deadline
        self.log_limiter = log_limiter or LogLimiter()
        self.access_log_level: int | None = None
        """INFO for a refusal whose reason is logged (or held back) by `log_exception`: one line to see."""
        self.prepared = False  # Tornado's own checks, before `prepare`, are passed

    def prepare(self) -> None:
        self.prepared = True
        if not self.wechat.token:
            self._not_configured("WeChat endpoint not configured: set wechat.token. 未配置微信 Token。")

    def _not_configured(self, text: str) -> None:
        self.set_status(503)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(text)

    def _signed_by_wechat(self) -> bool:
        return query_signed(self.wechat.token or "", lambda name: self.get_query_argument(name, ""))

    def get(self) -> None:
        """The server-URL handshake: echo `echostr` back when the signature is WeChat's.

        No clock-skew check here (WeChat's own documented example has an old timestamp), but the
        nonce is spent: a POST that reuses the handshake's query is a replay.
        """
        if not self._signed_by_wechat():
            raise HTTPError(403, "handshake refused: bad signature")
        raw = self.request.query_arguments.get("echostr", [b""])
        echostr = raw[-1].decode("utf-8", "replace")  # as sent: no stripping, no control characters dropped
        if len(raw) != 1 or not ECHOSTR.fullmatch(echostr):
            raise HTTPError(400, "handshake refused: echostr is not 1-128 printable ASCII characters")
        nonce = self.get_query_argument("nonce", "")
        if self.nonces is not None and not self.nonces.admit(nonce, ("handshake", echostr), self.clock().timestamp()):
            raise HTTPError(403, "handshake refused: nonce already used by another request (replay)")
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.write(echostr)

    async def post(self) -> None:
        now = self.clock()
        encrypted = self.get_query_argument("encrypt_type", "").lower() == "aes"
        if encrypted and self.crypto is None:
            if not (self._signed_by_wechat() or self._encrypted_part_signed()):
                raise HTTPError(403, "safe-mode message refused: bad signature")
            held_back = self.log_limiter.allow("aes-not-configured", now.timestamp())
            self.access_log_level = logging.INFO  # the line below, once a minute, is the one to see
            if held_back is not None:
                log.error(
                    "safe-mode message refused: encrypt_type=aes but wechat.encoding_aes_key/app_id are not set "
                    "(%d more like it in the last minute)",
                    held_back,
                )
            self._not_configured(
                "WeChat safe mode (encrypt_type=aes) is not configured: set wechat.encoding_aes_key and "
                "wechat.app_id. 未配置微信消息加解密密钥（EncodingAESKey、AppID）。"
            )
            return
        plaintext = self._decrypted_body() if encrypted else self._plain_body()
        if not OPENID_PATTERN.fullmatch(self.get_query_argument("openid", "") or "x"):
            raise HTTPError(400, "message refused: the openid query argument is not an openid")
        self._refuse_stale(now.timestamp())
        try:
            message = parse_message(plaintext)
        except MalformedMessage as error:
            raise HTTPError(400, "message refused: %s", error) from None
        self._refuse_replayed(message, now.timestamp())

        text = await self._reply_text(message, now)
        if text is None:
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.write("success")
            return
        timestamp = int(now.timestamp())
        reply = render_text_reply(message, text, timestamp)
        if encrypted:
            assert self.crypto is not None
            reply = self.crypto.encrypt_reply(reply, str(timestamp), str(secrets.randbelow(10**10)))
        self.set_header("Content-Type", "application/xml; charset=UTF-8")
        self.write(reply)

    # --- the checks, in order; each raises HTTPError with a reason for the log --------------------

    def _plain_body(self) -> bytes:
        if not self._signed_by_wechat():
            raise HTTPError(403, "message refused: bad signature")
        return self.request.body

    def _encrypted_part_signed(self) -> bool:
        """Whether `msg_signature` covers this body's `<Encrypt>`: needs only the token."""
        try:
            encrypt = encrypted_part(self.request.body)
        except WeChatCryptoError:
            return False
        expected = sha1_signature(
            self.wechat.token or "",
            self.get_query_argument("timestamp", ""),
            self.get_query_argument("nonce", ""),
            encrypt,
        )
        return signatures_match(expected, self.get_query_argument("msg_signature", None))

    def _unsigned_first(self, error: HTTPError) -> HTTPError:
        """What to answer for `error`: 403 instead of a 400 from Tornado for a request not WeChat's.

        Tornado reads a form-typed body (`Content-Type: application/x-www-form-urlencoded` or
        `multipart/form-data`) as a form before `prepare` and refuses a malformed one with 400,
        before our checks run. The signature still comes first: an unsigned request is a 403.
        """
        if self.prepared or error.status_code != 400:
            return error
        if not (self._signed_by_wechat() or self._encrypted_part_signed()):
            return HTTPError(403, "message refused: bad signature")
        return error

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        if isinstance(error, HTTPError):
            status_code = self._unsigned_first(error).status_code
        super().send_error(status_code, **kwargs)

    def log_exception(self, typ, value, tb) -> None:
        """A refusal's reason at most once a minute per reason, with the count of those held back."""
        if not (isinstance(value, HTTPError) and value.log_message and value.status_code < 500):
            super().log_exception(typ, value, tb)
            return
        value = self._unsigned_first(value)
        self.access_log_level = logging.INFO  # the reason line is this refusal's one WARNING
        held_back = self.log_limiter.allow(value.log_message, self.clock().timestamp())
        if held_back is None:
            return
        detail = value.log_message % value.args if value.args else value.log_message
        log.warning(
            "event=wechat_refused request_id=%s status=%d detail=%s held_back=%d",
            self.request_id,
            value.status_code,
            quoted(detail),
            held_back,
        )

    def _decrypted_body(self) -> bytes:
        """Safe and compatible mode: the `<Encrypt>` part, checked by msg_signature, decrypted.

        In compatible mode the body also carries plaintext fields; those are not covered by any
        signature, so they are ignored and only the encrypted part is read.
        """
        assert self.crypto is not None
        try:
            return self.crypto.decrypt(
                encrypted_part(self.request.body),
                self.get_query_argument("msg_signature", ""),
                self.get_query_argument("timestamp", ""),
                self.get_query_argument("nonce", ""),
            )
        except InvalidMessageSignature as error:
            raise HTTPError(403, "safe-mode message refused: %s", error.reason) from None
        except InvalidAppId as error:
            log.error("safe-mode message for another AppID: check wechat.app_id against the admin console")
            raise HTTPError(403, "safe-mode message refused: %s", error.reason) from None
        except WeChatCryptoError as error:
            raise HTTPError(400, "safe-mode message refused: %s", error.reason) from None

    def _refuse_stale(self, now: float) -> None:
        skew = self.wechat.max_clock_skew
        if skew and not timestamp_is_fresh(self.get_query_argument("timestamp", ""), now, skew):
            raise HTTPError(403, "message refused: timestamp more than %ds from now (replayed or clock wrong)", skew)

    def _refuse_replayed(self, message: IncomingMessage, now: float) -> None:
        nonce = self.get_query_argument("nonce", "")
        if self.nonces is not None and not self.nonces.admit(nonce, message.retry_key, now):
            raise HTTPError(403, "message refused: nonce already used by another message (replay)")

    # --- the reply ---------------------------------------------------------------------------

    async def _reply_text(self, message: IncomingMessage, now: datetime.datetime) -> str | None:
        """The reply, shared by every resend of this message, or a polite text if it cannot be had."""

        def first_try() -> Awaitable[str | None]:
            return self.conversation.reply_to(message, now)

        future = self.retries.share(message.retry_key, now.timestamp(), first_try)
        try:
            async with asyncio.timeout(self.reply_deadline):
                return await asyncio.shield(future)  # a resend may still want it
        except AuditUnavailable as error:
            log.error("cannot issue a link: audit database unavailable (%s)", error)
        except TimeoutError:
            log.error("no reply within %.1fs: audit database too slow; sent the busy text", self.reply_deadline)
        return UNAVAILABLE_TEXT
