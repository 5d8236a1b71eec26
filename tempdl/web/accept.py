"""Which of our two refusal bodies, HTML or JSON, a client's Accept header prefers.

A substring test is wrong both ways: `application/json, text/html;q=0.5` asks for JSON, and
`text/html;q=0, application/json` refuses HTML outright. Media types are case-insensitive, and a
type takes the quality of the most specific range that names it (RFC 9110 §12.5.1).
"""

from __future__ import annotations

_HTML = ("text", "html")
_JSON = ("application", "json")


def prefers_json(accept: str) -> bool:
    """True when the header rates JSON above HTML; equal ratings (or none) mean HTML, for browsers.

    At equal quality, a range naming JSON exactly beats one reaching HTML only through a wildcard
    (`application/json, */*` is an API client's header).
    """
    if not accept:
        return False
    ranges = list(_media_ranges(accept))
    json_rating = _rating(_JSON, ranges)
    return json_rating[0] > 0 and json_rating > _rating(_HTML, ranges)


def _media_ranges(accept: str):
    """(type, subtype, q) for each well-formed range; a malformed one is skipped, not fatal."""
    for element in accept.lower().split(","):
        media_range, *params = element.split(";")
        kind, slash, subtype = media_range.strip().partition("/")
        if not slash or not kind or not subtype:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        yield kind.strip(), subtype.strip(), quality


def _rating(media_type: tuple[str, str], ranges) -> tuple[float, int]:
    """(quality, specificity) of the most specific range matching `media_type`; (0, -1) if none."""
    best = (0.0, -1)
    for kind, subtype, quality in ranges:
        if (kind, subtype) == media_type:
            specificity = 2
        elif kind == media_type[0] and subtype == "*":
            specificity = 1
        elif kind == "*" and subtype == "*":
            specificity = 0
        else:
            continue
        if specificity > best[1]:
            best = (quality, specificity)
    return best
