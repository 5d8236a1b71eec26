"""The catalogue: keyword matching as followers type, and files only from files_dir."""

from __future__ import annotations

import os

import pytest

from tempdl.config.settings import OfferedFileConfig
from tempdl.errors import ConfigError
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


@pytest.mark.parametrize(
    "typed",
    [
        "「芝麻开门」",
        "“芝麻开门”",
        "芝麻开门！",
        "芝麻开门。",
        "《芝麻开门》",
        "\u200b芝麻\u200d开门\u200c",  # zero-width space, joiner, non-joiner
        "\ufeff芝麻开门",  # a BOM pasted along
        "芝麻开门\ufe0f",  # emoji variation selector
        "芝麻开门\U000e0100",  # ideographic variation selector
        " 芝麻开门🙏 ",
    ],
)
def test_keywords_match_as_followers_type_them(typed):
    assert normalize_keyword(typed) == "芝麻开门"


@pytest.mark.parametrize("typed", ["Open Sesame.", "“Open Sesame!”", "(open  SESAME)", "Ｏｐｅｎ　Ｓｅｓａｍｅ。"])
def test_latin_keywords_fold_punctuation_case_and_width(typed):
    assert normalize_keyword(typed) == "open sesame"


def test_inner_punctuation_is_kept():
    assert normalize_keyword("芝麻，开门") == "芝麻,开门"  # NFKC: the full-width comma is a comma
    assert normalize_keyword("v1.2") == "v1.2"


def test_a_catalogue_matches_the_folded_forms(tmp_path):
    (tmp_path / "InstMsiW.exe").write_bytes(b"x")
    catalog = Catalog(tmp_path, (OfferedFileConfig("instmsi", "InstMsiW.exe", ("Open Sesame", "芝麻开门")),))
    assert catalog.by_keyword("「芝麻开门」").id == "instmsi"
    assert catalog.by_keyword("Open Sesame.").id == "instmsi"
    assert catalog.by_keyword("！！！") is None


def test_keywords_that_fold_alike_in_two_files_are_refused(tmp_path):
    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(b"x")  # servable, so only the folding decides
    files = (
        OfferedFileConfig("a", "a.bin", ("芝麻开门",)),
        OfferedFileConfig("b", "b.bin", ("「芝麻开门」",)),
    )
    with pytest.raises(ConfigError) as refused:
        Catalog(tmp_path, files)
    assert str(refused.value) == (
        "keyword '芝麻开门' asks for several files (a, b): '芝麻开门' and '「芝麻开门」' fold alike "
        "(config key 'files[1].keywords')"
    )
    assert Catalog(tmp_path, files, refuse_conflicts=False).by_keyword("芝麻开门").id == "a"


def test_one_file_may_have_keywords_that_fold_alike(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"x")
    catalog = Catalog(tmp_path, (OfferedFileConfig("a", "a.bin", ("Open Sesame", "open sesame!")),))
    assert catalog.by_keyword("OPEN SESAME").id == "a"


def test_a_keyword_of_only_punctuation_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"keyword '！' is only punctuation or symbols \(config key 'files\[0\]"):
        Catalog(tmp_path, (OfferedFileConfig("a", "a.bin", ("！",)),))


def test_scenes_ask_for_their_file_and_may_not_be_shared(tmp_path):
    poster = OfferedFileConfig("a", "a.bin", (), scenes=("poster-a", "flyer"))
    catalog = Catalog(tmp_path, (poster, OfferedFileConfig("b", "b.bin", (), scenes=("poster-b",))))
    assert catalog.by_scene("poster-a").id == "a"
    assert catalog.by_scene("poster-b").id == "b"
    assert catalog.by_scene("POSTER-A") is None  # scenes are exact strings
    assert catalog.by_scene("nothing") is None
    with pytest.raises(
        ConfigError, match=r"scene 'flyer' asks for several files \(a, b\) \(config key 'files\[1\]\.scenes'\)"
    ):
        Catalog(tmp_path, (poster, OfferedFileConfig("b", "b.bin", (), scenes=("flyer",))))
