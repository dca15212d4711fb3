"""Class lists from presets, files, dataset folders and names."""

from __future__ import annotations

import pytest

from clap.cli.main import main
from clap.errors import ClapError
from clap.prompts.classes import load_classes, preset_classes


def test_presets_have_the_public_class_counts():
    counts = {p: len(preset_classes(p)) for p in ("pacs", "vlcs", "officehome", "domainnet")}
    assert counts == {"pacs": 7, "vlcs": 5, "officehome": 65, "domainnet": 345}
    assert "alarm clock" in preset_classes("OfficeHome")
    assert "the eiffel tower" in preset_classes("domainnet")


def test_sources(tmp_path):
    (tmp_path / "names.txt").write_text("# my classes\nblack widow\n\ncrème brûlée\n")
    assert load_classes(str(tmp_path / "names.txt")) == ["black widow", "crème brûlée"]
    for domain in ("art", "photo"):
        (tmp_path / "ds" / domain / "Alarm_Clock").mkdir(parents=True)
        (tmp_path / "ds" / domain / "Alarm_Clock" / "1.png").write_bytes(b"")
    assert load_classes(str(tmp_path / "ds")) == ["alarm clock"]
    assert load_classes(["dog", " cat "]) == ["dog", "cat"]


@pytest.mark.parametrize("source, message", [
    ("imagenet-21k", "neither a preset"),
    ([], "empty"),
    (["dog", "dog"], "same class"),
    (["Alarm_Clock", "alarm clock"], "same class"),
    (["", "cat"], "empty class name"),
    (["  ", "cat"], "empty class name"),
])
def test_bad_sources(source, message):
    with pytest.raises(ClapError, match=message):
        load_classes(source)


def test_unreadable_dataset_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClapError, match="no domain folders"):
        load_classes(str(tmp_path / "empty"))


def test_cli_prompts(tmp_path, capsys):
    assert main(["prompts", "--classes", "vlcs", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "car.txt").read_text().splitlines()
    assert len(lines) == 480 and lines[0] == "a realistic painting of a large red car"
    assert len((tmp_path / "prompts.jsonl").read_text().splitlines()) == 5 * 480
    assert main(["prompts", "--classes", "nope", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("clap: error: 'nope' is neither a preset")
