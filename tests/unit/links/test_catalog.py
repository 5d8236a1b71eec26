"""The catalogue: keyword matching as followers type, and files only from files_dir."""

from __future__ import annotations

import os

from tempdl.config.settings import OfferedFileConfig
from tempdl.links.catalog import Catalog, normalize_keyword


def test_keywords_fold_case_width_and_spaces():
    assert normalize_keyword("  Ｏｐｅｎ　ＳＥＳＡＭＥ ") == "open sesame"
    assert normalize_keyword("Open \t  Sesame") == "open sesame"
    assert normalize_keyword("芝麻开门") == "芝麻开门"


def test_configured_files_match_by_keyword_and_id(tmp_path):
    (tmp_path / "InstMsiW.exe").write_bytes(b"x")
    catalog = Catalog(tmp_path, (OfferedFileConfig("instmsi", "InstMsiW.exe", ("Open Sesame", "芝麻开门")),))
    assert catalog.by_keyword("ｏｐｅｎ sesame").id == "instmsi"
    assert catalog.by_keyword("芝麻开门").name == "InstMsiW.exe"
    assert catalog.by_keyword("open") is None
    assert catalog.by_id("instmsi").path == "InstMsiW.exe"


def test_without_files_tables_every_regular_file_is_offered(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"a")
    (tmp_path / ".hidden").write_bytes(b"h")
    (tmp_path / "sub").mkdir()
    catalog = Catalog(tmp_path, None)
    assert [f.id for f in catalog.files()] == ["a.txt"]
    (tmp_path / "b.bin").write_bytes(b"b")  # dropped in later: offered without a restart
    assert catalog.by_keyword("B.BIN").id == "b.bin"


def test_paths_never_leave_files_dir(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", files / "link.txt")
    catalog = Catalog(files, (OfferedFileConfig("link", "link.txt", ("x",)), OfferedFileConfig("gone", "gone", ("y",))))
    assert catalog.absolute_path(catalog.entry("link")) is None
    assert catalog.absolute_path(catalog.entry("gone")) is None
    assert catalog.by_id("link") is None and catalog.by_id("gone") is None
    auto = Catalog(files, None)
    assert auto.by_id("link.txt") is None  # symlinks are not offered automatically


def test_a_symlink_pointed_outside_later_is_refused_at_once(tmp_path):
    """Where a name leads is remembered per file it leads to: a symlink that once led inside and
    now leads outside files_dir is resolved afresh, and refused."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "real.bin").write_bytes(b"inside")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(files / "real.bin", files / "link.bin")
    catalog = Catalog(files, (OfferedFileConfig("f", "link.bin", ("f",)),))
    offered = catalog.by_id("f")
    path, status = catalog.locate(offered)
    assert path == (files / "real.bin").resolve() and status.st_size == 6
    os.remove(files / "link.bin")
    os.symlink(tmp_path / "secret.txt", files / "link.bin")
    assert catalog.locate(offered) is None
    os.remove(files / "link.bin")
    os.symlink(files / "real.bin", files / "link.bin")
    assert catalog.locate(offered)[0] == (files / "real.bin").resolve()


def test_a_file_replaced_in_place_is_located_with_its_new_stat(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"old")
    catalog = Catalog(tmp_path, None)
    offered = catalog.by_id("a.bin")
    assert catalog.locate(offered)[1].st_size == 3
    (tmp_path / "a.bin.new").write_bytes(b"newer")
    os.replace(tmp_path / "a.bin.new", tmp_path / "a.bin")
    assert catalog.locate(offered)[1].st_size == 5
