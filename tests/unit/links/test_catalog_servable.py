"""Only servable files are on offer: present, a regular file inside files_dir, readable by us."""

from __future__ import annotations

import os

from tempdl.config.settings import OfferedFileConfig
from tempdl.links.catalog import Catalog

CONFIGURED = (
    OfferedFileConfig("a", "a.bin", ("alpha",)),
    OfferedFileConfig("b", "b.bin", ("beta",)),
)


def test_unreadable_and_deleted_files_leave_the_offer_at_once(tmp_path, monkeypatch):
    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(b"x")
    catalog = Catalog(tmp_path, CONFIGURED)
    assert [f.id for f in catalog.files()] == ["a", "b"]

    # Tests run as root, whom chmod cannot lock out: the permission answer is what we fake.
    unreadable = str((tmp_path / "a.bin").resolve())
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != unreadable and real_access(path, mode))
    assert catalog.by_id("a") is None and catalog.by_keyword("alpha") is None
    assert catalog.entry("a") is not None  # still configured: `check` and `issue` can name it
    assert [f.id for f in catalog.files()] == ["b"]

    (tmp_path / "b.bin").unlink()
    assert catalog.by_id("b") is None and catalog.by_keyword("beta") is None
    assert catalog.files() == ()
    assert [f.id for f in catalog.listing()] == ["a", "b"]

    (tmp_path / "b.bin").write_bytes(b"back")
    assert catalog.by_keyword("beta").id == "b"
