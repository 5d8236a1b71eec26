"""Writing a commented `tempdl.toml` from the keys table: the one text behind `init` and the example.

`render_config` writes the keys it is given as live settings and every other key commented out at
its default, each with its help text, flag and environment variable, so an operator sees all there
is to set, with the reason, in the file itself. The repository's `tempdl.toml.example` is
`example_config()` (a test keeps the two equal), and it is therefore inside the pyz too:
`tempdl init --example` prints it.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import PurePath

from tempdl.config.fields import Key
from tempdl.config.keys import FILE_FIELDS, FILES_HELP, KEYS, SECTIONS
from tempdl.errors import ConfigError

WIDTH = 100

CLASSIC_FILE = (
    ("id", "InstMsiW.exe"),
    ("path", "InstMsiW.exe"),
    ("keywords", ["Open Sesame", "芝麻开门"]),
    ("description", "Windows Installer 2.0 redistributable"),
)
"""The classic setup's `[[files]]` table: keyword "Open Sesame" offering InstMsiW.exe."""

REGENERATE = "python -m tempdl.config.docs"
"""The command that rewrites `tempdl.toml.example` and `docs/configuration.md` from the table."""

EXAMPLE_HEADER = (
    'tempdl.toml.example: the classic setup, keyword "Open Sesame" offering InstMsiW.exe.\n'
    "Copy it to tempdl.toml (or point --config / TEMPDL_CONFIG at it) and edit. Every key is shown with\n"
    "its default; a commented-out key keeps its default. Precedence: command-line flag > environment\n"
    "variable (named beside each key) > this file > default. Generated from tempdl/config/keys.py by\n"
    f"`{REGENERATE}`; `python server.py init --example` prints it."
)


def toml_value(value: object) -> str:
    """A TOML literal for a string, path, whole number, boolean or list of strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, PurePath):
        value = str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are valid in TOML basic strings
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def described(key: Key) -> str:
    """The key's help text with the flag and environment variable that also set it."""
    flag = f" Flag: {key.flag}." if key.flag else ""
    return f"{key.help}{flag} Env: {key.env_form}."


def _comment(text: str, first: str = "", rest: str = "") -> list[str]:
    """`text` wrapped into comment lines, the first indented by `first`, the others by `rest`."""
    wrapped = textwrap.wrap(text, WIDTH - 2, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)
    return [f"# {line}".rstrip() for line in wrapped]


def _key_lines(key: Key, values: Mapping[str, object]) -> list[str]:
    lines = _comment(described(key))
    if key.name in values:
        lines.append(f"{key.short_name} = {toml_value(values[key.name])}")
    else:
        lines.append(f"# {key.short_name} = {toml_value(key.shown_default)}")
    return lines


def _files_help_lines() -> list[str]:
    lines = _comment(FILES_HELP + " Each [[files]] table has:")
    for field in FILE_FIELDS:
        optional = "" if field.required else " (optional)"
        lines += _comment(f"{field.name}{optional}: {field.help}", first="  ", rest="    ")
    return lines


def classic_file_table() -> list[str]:
    return ["[[files]]", *(f"{name} = {toml_value(value)}" for name, value in CLASSIC_FILE)]


def render_config(
    values: Mapping[str, object],
    *,
    offer_classic_file: bool,
    header: str,
    keys: Sequence[Key] = KEYS,
) -> str:
    """A complete commented tempdl.toml; `values` (dotted names) are set, other keys commented out.

    `offer_classic_file` writes the "Open Sesame" → InstMsiW.exe `[[files]]` table live; otherwise
    it is there commented out, as an example to copy.
    """
    unknown = set(values) - {key.name for key in keys}
    if unknown:
        raise ConfigError(f"config key '{sorted(unknown)[0]}': not a documented key")
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    section: str | None = None
    for key in keys:
        if key.section != section:
            section = key.section
            lines += ["", *_comment(SECTIONS.get(section or "", "")), f"[{section}]"]
        lines += ["", *_key_lines(key, values)]
    lines += ["", "", *_files_help_lines()]
    table = classic_file_table()
    lines += table if offer_classic_file else [f"# {line}" for line in table]
    return "\n".join(lines) + "\n"


def example_config() -> str:
    """The text of tempdl.toml.example."""
    return render_config({}, offer_classic_file=True, header=EXAMPLE_HEADER)
