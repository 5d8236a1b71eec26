"""The committed generated files are what the keys table writes, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from tempdl.config.docs import GENERATED, configuration_markdown, main
from tempdl.config.keys import FILE_FIELDS, KEYS

CHECKOUT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("relative", sorted(GENERATED))
def test_committed_file_is_what_the_table_generates(relative: str):
    committed = (CHECKOUT / relative).read_bytes()
    assert committed == GENERATED[relative]().encode("utf-8"), (
        f"{relative} is stale: run `python -m tempdl.config.docs` in the checkout and commit the result"
    )


def test_the_generator_writes_every_file_and_then_nothing(tmp_path: Path, capsys):
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == "".join(f"wrote {tmp_path / relative}\n" for relative in GENERATED)
    for relative, render in GENERATED.items():
        assert (tmp_path / relative).read_bytes() == render().encode("utf-8")
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == "".join(f"unchanged {tmp_path / relative}\n" for relative in GENERATED)


def test_the_docs_have_a_row_for_every_key_and_every_files_field():
    text = configuration_markdown()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split(" | ")[0] for row in rows] == [f"| `{key.name}`" for key in KEYS] + [
        f"| `{field.name}`" for field in FILE_FIELDS
    ]
    assert "| `port` | `TEMPDL_PORT` | `8000` | Listen port. Flag: `--port`. |" in rows
    assert "| `secret_keys` | `TEMPDL_SECRET_KEYS` (comma-separated) |" in text
    assert "| `wechat.token` | `TEMPDL_WECHAT_TOKEN` | unset |" in text
    assert 'keywords = ["Open Sesame", "芝麻开门"]' in text
