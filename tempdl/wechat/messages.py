"""WeChat message XML: parse what followers send, render the passive replies we answer with.

Parsing goes through untangle, always from a file-like object (given a `str`, untangle would open
it as a path or fetch it as a URL). Characters that XML 1.0 forbids, which WeChat does put into
Content now and then, are stripped first so such a message still parses.
"""

from __future__ import annotations

import io
import re
import xml.sax
from dataclasses import dataclass

import untangle

MAX_REPLY_BYTES = 2047
_XML_FORBIDDEN = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
OPENID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What an openid (FromUserName) can be: WeChat's are 28 characters of this alphabet."""


class MalformedMessage(Exception):
    """The body is not a WeChat message we can read; the message says what was wrong."""


@dataclass(frozen=True)
class IncomingMessage:
    to_user: str
    from_user: str
    create_time: int
    msg_type: str
    content: str = ""
    msg_id: str = ""
    event: str = ""
    event_key: str = ""
    recognition: str = ""
    """What WeChat's speech recognition heard in a voice message (empty when it is off)."""
    scan_result: str = ""
    """The text of the code scanned by a `scancode_waitmsg` menu button."""

    @property
    def retry_key(self) -> tuple[str, ...]:
        """What identifies a resend of this message: the sender and MsgId for messages; for events
        (most carry no MsgId) everything that tells two events of one second apart."""
        if self.msg_type != "event":
            return (self.from_user, self.msg_id or f"time:{self.create_time}")
        return (self.from_user, "event", str(self.create_time), self.event, self.event_key, self.msg_id)


def _text_of(root, name: str) -> str:
    elements = root.get_elements(name)
    if not elements:
        return ""
    if len(elements) > 1:  # which one WeChat meant cannot be known
        raise MalformedMessage(f"{name} appears {len(elements)} times")
    return (elements[0].cdata or "").strip()


def parse_xml(body: bytes):
    """Parse XML bytes with untangle; raise `MalformedMessage` for anything unreadable."""
    cleaned = _XML_FORBIDDEN.sub(b"", body)
    try:
        document = untangle.parse(io.BytesIO(cleaned))
    except (xml.sax.SAXException, ValueError, Exception) as error:
        raise MalformedMessage(f"unparsable XML: {type(error).__name__}") from None
    roots = document.get_elements("xml")
    if len(roots) != 1:
        raise MalformedMessage("the root element is not <xml>")
    return roots[0]


def parse_message(body: bytes) -> IncomingMessage:
    root = parse_xml(body)
    fields = {name: _text_of(root, name) for name in ("ToUserName", "FromUserName", "MsgType", "CreateTime")}
    missing = [name for name, value in fields.items() if not value]
    if missing:
        raise MalformedMessage(f"missing {', '.join(missing)}")
    if not OPENID_PATTERN.fullmatch(fields["FromUserName"]):
        raise MalformedMessage(f"FromUserName is not an openid ({len(fields['FromUserName'])} characters)")
    try:
        create_time = int(fields["CreateTime"])
    except ValueError:
        raise MalformedMessage("CreateTime is not a number") from None
    return IncomingMessage(
        to_user=fields["ToUserName"],
        from_user=fields["FromUserName"],
        create_time=create_time,
        msg_type=fields["MsgType"].lower(),
        content=_text_of(root, "Content"),
        msg_id=_text_of(root, "MsgId") or _text_of(root, "MsgID"),  # some events spell it MsgID
        event=_text_of(root, "Event"),
        event_key=_text_of(root, "EventKey"),
        recognition=_text_of(root, "Recognition"),
        scan_result=_scan_result(root),
    )


def _scan_result(root) -> str:
    """`<ScanCodeInfo><ScanResult>` of a scancode event, or ""."""
    infos = root.get_elements("ScanCodeInfo")
    return _text_of(infos[0], "ScanResult") if len(infos) == 1 else ""


def cdata(text: str) -> str:
    """Wrap text in CDATA; a `]]>` inside is split across two sections so it survives."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def truncate_utf8(text: str, limit: int = MAX_REPLY_BYTES) -> str:
    """Cut text to at most `limit` bytes of UTF-8 without splitting a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    if limit < 3:
        return ""
    return encoded[: limit - 3].decode("utf-8", "ignore") + "…"


def render_text_reply(incoming: IncomingMessage, text: str, now: int) -> bytes:
    """A passive text reply: To/From swapped, CreateTime now, text within WeChat's size limit."""
    return (
        "<xml>"
        f"<ToUserName>{cdata(incoming.from_user)}</ToUserName>"
        f"<FromUserName>{cdata(incoming.to_user)}</FromUserName>"
        f"<CreateTime>{int(now)}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(truncate_utf8(text))}</Content>"
        "</xml>"
    ).encode()
