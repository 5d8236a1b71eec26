"""The one rule for the client's address: proxy headers believed from trusted proxies only."""

from __future__ import annotations

import pytest

from tempdl.web.client_address import TrustedProxies

LOOPBACK = TrustedProxies(("127.0.0.1", "::1"))


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        ("127.0.0.1", {"X-Real-IP": "203.0.113.5"}, "203.0.113.5"),
        ("::1", {"X-Real-IP": "2001:db8::7"}, "2001:db8::7"),
        ("198.51.100.4", {"X-Real-IP": "203.0.113.5"}, "198.51.100.4"),  # not a proxy: ignored
        ("198.51.100.4", {"X-Forwarded-For": "203.0.113.5"}, "198.51.100.4"),
        ("127.0.0.1", {}, "127.0.0.1"),
        ("127.0.0.1", {"X-Real-IP": "not an address"}, "127.0.0.1"),
        # right-most hop that is not a trusted proxy; the forged left part is never reached
        ("127.0.0.1", {"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 127.0.0.1"}, "203.0.113.9"),
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "6.6.6.6"}, "203.0.113.9"),
        ("127.0.0.1", {"X-Forwarded-For": "junk, 127.0.0.1"}, "127.0.0.1"),
        ("::ffff:127.0.0.1", {"X-Real-IP": "203.0.113.5"}, "203.0.113.5"),
    ],
)
def test_client_address(peer, headers, client):
    assert LOOPBACK.client_address(peer, headers) == client


def test_cidr_ranges_and_chains_of_proxies():
    trusted = TrustedProxies(("10.0.0.0/8", "127.0.0.1"))
    headers = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.1.2.3, 10.9.9.9"}
    assert trusted.client_address("127.0.0.1", headers) == "203.0.113.9"
    assert trusted.client_address("10.4.4.4", {"X-Real-IP": "203.0.113.1"}) == "203.0.113.1"
    assert trusted.client_address("11.0.0.1", {"X-Real-IP": "203.0.113.1"}) == "11.0.0.1"


def test_nothing_trusted_believes_no_header():
    assert TrustedProxies(()).client_address("127.0.0.1", {"X-Real-IP": "203.0.113.5"}) == "127.0.0.1"
