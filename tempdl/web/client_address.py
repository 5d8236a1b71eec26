"""Who the client is: the peer's address, or what a trusted reverse proxy says it is.

`X-Real-IP` and `X-Forwarded-For` are believed only when the connection comes from one of
`trusted_proxies`; from anyone else they are ignored, so a client that reaches tempdl directly
cannot forge its audit `client_ip` or rotate addresses to dodge the admin lockout. Behind a chain
of proxies, the client is the right-most X-Forwarded-For address that is not a trusted proxy
(each proxy appends the address it saw; only the left part is the client's to forge).

This replaces Tornado's `xheaders`, which believes those headers from anyone. `RealClientAdapter`
sets the request's `remote_ip` once, before routing, so every handler and the access log read
the same answer in every serve mode.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from tornado import httputil

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_VERDICTS_KEPT = 4096


class TrustedProxies:
    """The configured proxy ranges, and the rule that turns a peer and its headers into a client."""

    def __init__(self, ranges: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(item, strict=False) for item in ranges)
        self._verdicts: dict[str, bool] = {}  # address -> trusted: parsing costs more than the request's routing

    def trusts(self, address: str) -> bool:
        verdict = self._verdicts.get(address)
        if verdict is None:
            parsed = _parse(address)
            verdict = parsed is not None and any(parsed in network for network in self.networks)
            if len(self._verdicts) >= _VERDICTS_KEPT:
                self._verdicts.clear()  # a flood of distinct addresses costs a re-parse, never memory
            self._verdicts[address] = verdict
        return verdict

    def client_address(self, peer: str, headers: Mapping[str, str]) -> str:
        """The client's address as this server should believe it."""
        if not self.networks or not self.trusts(peer):
            return peer
        forwarded = headers.get("X-Forwarded-For")
        if forwarded:
            hops = [hop.strip() for hop in forwarded.split(",")]
            client = peer
            for hop in reversed(hops):
                if _parse(hop) is None:
                    break  # garbage: believe nothing further left than the last good hop
                client = hop
                if not self.trusts(hop):
                    break
            return client
        real_ip = (headers.get("X-Real-IP") or "").strip()
        return real_ip if real_ip and _parse(real_ip) is not None else peer


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
        return parsed.ipv4_mapped
    return parsed


class RealClientAdapter(httputil.HTTPMessageDelegate):
    """Wraps a request's delegate: sets `remote_ip` from `TrustedProxies` when the head arrives,
    and puts the peer's address back when the request ends (keep-alive reuses the context)."""

    def __init__(
        self,
        delegate: httputil.HTTPMessageDelegate,
        request_conn: httputil.HTTPConnection,
        trusted: TrustedProxies,
    ) -> None:
        self.delegate = delegate
        self.context = getattr(request_conn, "context", None)
        self.trusted = trusted
        self.peer = getattr(self.context, "remote_ip", None)

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ):
        if self.context is not None and self.peer:
            self.context.remote_ip = self.trusted.client_address(self.peer, headers)
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes):
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()
        self._restore()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()
        self._restore()

    def _restore(self) -> None:
        if self.context is not None and self.peer:
            self.context.remote_ip = self.peer
