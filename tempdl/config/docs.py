"""`docs/configuration.md` from the keys table, and the command that regenerates the generated files.

`python -m tempdl.config.docs` (from a checkout) rewrites `tempdl.toml.example` and
`docs/configuration.md`; a test fails, naming that command, when either differs from the table.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath

from tempdl.config.fields import Key
from tempdl.config.keys import FILE_FIELDS, FILES_HELP, KEYS
from tempdl.config.toml import REGENERATE, classic_file_table, example_config, toml_value

CHECKOUT = Path(__file__).resolve().parents[2]

INTRO = f"""\
# Configuration

<!-- Generated from tempdl/config/keys.py by `{REGENERATE}`: edit the table there, not this file. -->

Every key can be set in the config file, in its environment variable, and a few by a command-line
flag. Precedence, key by key: command-line flag > environment variable > config file > default.
The config file is `tempdl.toml` in the working directory, or the file `--config PATH` or
`TEMPDL_CONFIG=PATH` names (TOML). A bad value is refused at start with one line naming the key.
`python server.py init` writes a commented config file for a new server; `tempdl.toml.example`
shows every key with its default (`python server.py init --example` prints it).
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(value: object) -> str:
    return f"`{value}`" if isinstance(value, str | PurePath) else f"`{toml_value(value)}`"


def _default(key: Key) -> str:
    return "unset" if key.default is None and key.shown is None else _code(key.shown_default)


def _meaning(key: Key) -> str:
    return key.help + (f" Flag: `{key.flag}`." if key.flag else "")


def configuration_markdown() -> str:
    """The text of docs/configuration.md."""
    lines = [INTRO, "## Keys", "", "| key | env | default | meaning |", "|---|---|---|---|"]
    for key in KEYS:
        env = f"`{key.env}`" + key.env_form.removeprefix(key.env)
        lines.append(f"| `{key.name}` | {env} | {_cell(_default(key))} | {_cell(_meaning(key))} |")
    lines += ["", "## Files on offer: `[[files]]`", "", FILES_HELP, "", "| field | | meaning |", "|---|---|---|"]
    for field in FILE_FIELDS:
        needed = "required" if field.required else "optional"
        lines.append(f"| `{field.name}` | {needed} | {_cell(field.help)} |")
    lines += ["", 'The classic setup, keyword "Open Sesame" offering InstMsiW.exe:', "", "```toml"]
    lines += [*classic_file_table(), "```"]
    return "\n".join(lines) + "\n"


GENERATED: dict[str, Callable[[], str]] = {
    "tempdl.toml.example": example_config,
    "docs/configuration.md": configuration_markdown,
}
"""Each generated file, by its path in the checkout, and the function that writes its text."""


def regenerate(root: Path) -> list[str]:
    """Rewrite every generated file under `root` that differs from the table; the paths rewritten."""
    rewritten = []
    for relative, render in GENERATED.items():
        path = root / relative
        text = render()
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            rewritten.append(relative)
    return rewritten


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    root = Path(args[0]) if args else CHECKOUT
    rewritten = regenerate(root)
    for relative in GENERATED:
        sys.stdout.write(f"{'wrote' if relative in rewritten else 'unchanged'} {root / relative}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
