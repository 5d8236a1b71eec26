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


def test_remembered_verdicts_are_the_same_answers():
    proxies = TrustedProxies(["10.0.0.0/8"])
    forwarded = {"X-Forwarded-For": "203.0.113.9, 10.1.1.1"}
    first = [proxies.client_address(peer, forwarded) for peer in ("10.2.3.4", "192.0.2.1", "::ffff:10.2.3.4")]
    again = [proxies.client_address(peer, forwarded) for peer in ("10.2.3.4", "192.0.2.1", "::ffff:10.2.3.4")]
    assert first == again == ["203.0.113.9", "192.0.2.1", "203.0.113.9"]


def test_a_flood_of_addresses_does_not_grow_the_memory_without_bound():
    proxies = TrustedProxies(["10.0.0.0/8"])
    for n in range(10_000):
        proxies.trusts(f"192.0.{n // 256 % 256}.{n % 256}")
        proxies.trusts(f"garbage-{n}")
    assert len(proxies._verdicts) <= 4096
    assert proxies.trusts("10.9.9.9") and not proxies.trusts("garbage-1")
