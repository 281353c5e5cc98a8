"""Sidecar titles and descriptions."""

from __future__ import annotations

import pytest

from pinembed.errors import InputError
from pinembed.ingestion.sidecar import read_sidecar


def test_txt_and_json(tmp_path):
    (tmp_path / "a.txt").write_text("\ufeffRed shoes\nLeather, size 42.\nSecond line.\n")
    (tmp_path / "b.json").write_text('{"title": "Pasta night", "description": "Quick\\u0000 recipe"}')
    (tmp_path / "c.json").write_text('{"title": "Only a title"}')
    assert read_sidecar(tmp_path / "a.txt") == ("Red shoes", "Leather, size 42.\nSecond line.")
    assert read_sidecar(tmp_path / "b.json") == ("Pasta night", "Quick recipe")
    assert read_sidecar(tmp_path / "c.json") == ("Only a title", None)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"title": 5}'])
def test_bad_json_is_an_input_error(tmp_path, text):
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(InputError) as e:
        read_sidecar(tmp_path / "x.json")
    assert e.value.stage == "sidecar"
