"""The file name and type a browser is given."""

from __future__ import annotations

import pytest

from tempdl.web.disposition import ascii_file_name, content_disposition, content_type


@pytest.mark.parametrize(
    "name, fallback",
    [
        ("说明.pdf", "download.pdf"),
        ("安装包.exe", "download.exe"),
        ("报告.文档", "download"),  # an extension with no ASCII form is dropped
        ("文件", "download"),
        ("résumé.pdf", "resume.pdf"),
        ("说明 v2.pdf", "v2.pdf"),
        ("说明.ｐｄｆ", "download.pdf"),  # full-width letters fold to ASCII
        ("InstMsiW.exe", "InstMsiW.exe"),
        ("archive.tar.gz", "archive.tar.gz"),
        ("my file (1).txt", "my file (1).txt"),
        ('say "hi".txt', "say _hi_.txt"),
        ("", "download"),
    ],
)
def test_ascii_file_name(name, fallback):
    assert ascii_file_name(name) == fallback
    assert fallback.isascii()


def test_an_ascii_name_is_sent_as_it_is():
    assert content_disposition("InstMsiW.exe") == 'attachment; filename="InstMsiW.exe"'


@pytest.mark.parametrize(
    "name, header",
    [
        ("说明.pdf", "attachment; filename=\"download.pdf\"; filename*=UTF-8''%E8%AF%B4%E6%98%8E.pdf"),
        (
            "安装包.exe",
            "attachment; filename=\"download.exe\"; filename*=UTF-8''%E5%AE%89%E8%A3%85%E5%8C%85.exe",
        ),
        (
            "报告.文档",
            "attachment; filename=\"download\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.%E6%96%87%E6%A1%A3",
        ),
        ('say "hi".txt', "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt"),
    ],
)
def test_other_names_also_carry_the_real_name_in_rfc_5987(name, header):
    assert content_disposition(name) == header
    header.encode("ascii")


@pytest.mark.parametrize(
    "name, mime_type",
    [
        ("说明.pdf", "application/pdf"),
        ("hello.txt", "text/plain"),
        ("archive.tar.gz", "application/octet-stream"),  # compressed: never decoded by the browser
        ("no-extension", "application/octet-stream"),
    ],
)
def test_content_type(name, mime_type):
    assert content_type(name) == mime_type
