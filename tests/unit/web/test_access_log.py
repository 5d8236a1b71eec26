"""Log values stay one token on one line, whatever characters a client put into them."""

from __future__ import annotations

import pytest

from tempdl.web.access_log import quoted


@pytest.mark.parametrize("value", ["abc", "oyORnuP8q7ou2gfYjqLzSIWZf0rs", "/wechat", "芝麻开门", 403])
def test_plain_values_stay_bare(value):
    assert quoted(value) == str(value)


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        ("a b", '"a b"'),
        ('say "x"', '"say \\"x\\""'),
        ("k=v", '"k=v"'),
        ("a\nb", '"a\\nb"'),
        ("a\rb", '"a\\rb"'),
        ("a\x00b", '"a\\u0000b"'),
        ("a\x1bb", '"a\\u001bb"'),
        ("a\x7fb", '"a\\u007fb"'),
        ("a\x85b", '"a\\u0085b"'),  # NEL: a line break to some log shippers
        ("a\x9bb", '"a\\u009bb"'),  # C1 CSI: starts a terminal escape
        ("a\u2028b", '"a\\u2028b"'),
        ("a\u2029b", '"a\\u2029b"'),
        ("", '""'),
    ],
)
def test_anything_that_could_break_the_line_is_escaped(value, logged):
    assert quoted(value) == logged
    assert not any(c in quoted(value) for c in "\n\r\x85\u2028\u2029\x00\x7f")
