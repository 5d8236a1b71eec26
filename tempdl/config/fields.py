"""The row types of `tempdl.config.keys`: a config key, and a key of a `[[files]]` table.

A `Key` derives the rest of what tempdl knows about it (its section, environment variable, the
flag's `dest`, the default as the docs show it) from its few fields. Keeping the types here
leaves `keys` the tables alone: the one place to edit to add a key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Key:
    """One config key. `default` is None for a key that is unset, or derived from other keys
    (`shown` then says how, for the docs and the commented file)."""

    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str
    flag: str | None = None
    shown: Any = None
    secret: bool = False

    @property
    def section(self) -> str | None:
        return self.name.split(".", 1)[0] if "." in self.name else None

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[-1]

    @property
    def env(self) -> str:
        return "TEMPDL_" + self.name.replace(".", "_").upper()

    @property
    def env_form(self) -> str:
        """The environment variable, and how a list is written in it."""
        return f"{self.env} (comma-separated)" if isinstance(self.default, tuple) else self.env

    @property
    def flag_dest(self) -> str | None:
        """The flag's name in the mapping `load_settings` is given (argparse's `dest`)."""
        return self.flag.lstrip("-").replace("-", "_") if self.flag else None

    @property
    def shown_default(self) -> Any:
        """The default as the docs write it: a placeholder when it is derived or unset."""
        if self.shown is not None:
            return self.shown
        return "<none>" if self.default is None else self.default


@dataclass(frozen=True)
class FileField:
    """One key of a `[[files]]` table."""

    name: str
    help: str
    required: bool = False
