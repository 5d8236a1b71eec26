"""Tornado templates, loaded through importlib.resources so they also work from a zipapp."""

from __future__ import annotations

from importlib import resources

from tornado.template import BaseLoader, Template


class PackageLoader(BaseLoader):
    """Loads templates from this package, whether it lives in a folder or inside a .pyz."""

    def resolve_path(self, name: str, parent_path: str | None = None) -> str:
        return name

    def _create_template(self, name: str) -> Template:
        source = resources.files(__package__).joinpath(name).read_bytes()
        return Template(source, name=name, loader=self)
