"""What a browser is told about a downloaded file: the name to save it as, and its type.

`Content-Disposition` carries the name twice (RFC 6266): `filename=` in plain ASCII for old
clients, and the real name as RFC 5987 `filename*=UTF-8''…` for the rest. A name with nothing
ASCII in its stem falls back to `download`, keeping its extension when that is ASCII, so the
saved file still opens with the right program (`说明.pdf` → `download.pdf`).
"""

from __future__ import annotations

import functools
import mimetypes
import re
import unicodedata
import urllib.parse

FALLBACK_STEM = "download"
_UNSAFE = re.compile(r"[^A-Za-z0-9._()+ -]")


@functools.lru_cache(maxsize=256)  # a pure function of the few names on offer, asked on every download
def content_disposition(name: str) -> str:
    """`attachment` with an ASCII `filename=` and, for other names, RFC 5987 `filename*=`."""
    fallback = ascii_file_name(name)
    header = f'attachment; filename="{fallback}"'
    if fallback != name:
        header += "; filename*=UTF-8''" + urllib.parse.quote(name, safe="")
    return header


def ascii_file_name(name: str) -> str:
    """`name` as a safe ASCII file name: accents dropped, other letters gone, the extension kept.

    ASCII names keep their shape (characters a header cannot carry become `_`); in other names
    stem and extension are folded apart, so a stem with no ASCII left becomes `download` and an
    extension with no ASCII form is dropped rather than mistaken for the stem.
    """
    if name.isascii():
        return _ascii_part(name) or FALLBACK_STEM
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:  # no extension, or a dot file such as `.配置`
        stem, extension = name, ""
    ascii_stem = _ascii_part(stem) or FALLBACK_STEM
    ascii_extension = _ascii_part(extension) if _folds_to_ascii(extension) else ""
    return f"{ascii_stem}.{ascii_extension}" if ascii_extension else ascii_stem


def _ascii_part(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _UNSAFE.sub("_", folded).strip(" .")


def _folds_to_ascii(text: str) -> bool:
    """True when only accents (or full-width forms) stand between `text` and ASCII."""
    folded = unicodedata.normalize("NFKD", text)
    return all(character.isascii() or unicodedata.combining(character) for character in folded)


@functools.lru_cache(maxsize=256)
def content_type(name: str) -> str:
    """The type a file name suggests; `application/octet-stream` for compressed or unknown ones."""
    mime_type, encoding = mimetypes.guess_type(name)
    if encoding or not mime_type:
        return "application/octet-stream"
    return mime_type
