"""experiments/world_paper/reproduce.py end to end on a shrunk setting, and its README's copy of its tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_reproduction_runs_end_to_end_shrunk(shrunk_reproduction, experiment_script):
    """Demo at power (shrunk by its options), then AutoAttack against PGD-20 on the same images; the results
    folder holds both reports and a summary read off them. eps 64/255 leaves APGD nothing for Square to do."""
    results, out = shrunk_reproduction.results, shrunk_reproduction.out
    assert shrunk_reproduction.code == 0
    demo = json.loads((results / "world_paper.json").read_text())
    assert demo["results"]["attacked_images"] == 8 and demo["models"]["Im.Aug"]["training_data"]["images"] == 64
    auto = json.loads((results / "autoattack.json").read_text())
    assert list(auto["models"]) == ["CLIP", "CLAP"] and auto["results"]["attacked_images"] == 8
    for heads in auto["results"]["adversarial"].values():
        for by_domain in heads.values():
            for row in by_domain.values():
                assert row["AutoAttack"]["64/255"] <= row["PGD-20"]["64/255"]
    text = (results / "summary.md").read_text()
    assert "| zero-shot C | PGD-20 | 1/255 |" in text and "| zero-shot C | AutoAttack | 64/255 |" in text
    assert (results / "adversarial_eps.png").is_file() and (results / "claims.md").is_file()
    assert "## Why openness fails" in text and "| openness_analysis | CLAP | margin_median |" in text
    (results / "summary.md").unlink()
    assert experiment_script("experiments/world_paper/reproduce.py").run(
        ["--results", str(results), "--summary-only"]) == 0
    assert (results / "summary.md").read_text() == text
    demo_seconds = json.loads((results / "seconds.json").read_text())["demo"]
    assert experiment_script("experiments/world_paper/reproduce.py").run(
        ["--out", str(out), "--results", str(results), "--autoattack-only", "--autoattack-images", "1",
         "--autoattack-eps", "32/255", "--no-progress"]) == 0
    assert json.loads((results / "world_paper.json").read_text()) == demo
    assert json.loads((results / "seconds.json").read_text())["demo"] == demo_seconds
    assert "| zero-shot C | AutoAttack | 32/255 |" in (results / "summary.md").read_text()


def test_autoattack_only_needs_a_finished_reproduction(tmp_path, experiment_script, capsys):
    with pytest.raises(SystemExit) as exit_:
        experiment_script("experiments/world_paper/reproduce.py").run(["--out", str(tmp_path), "--autoattack-only"])
    assert exit_.value.code == 2 and "run the whole reproduction there first" in capsys.readouterr().err


def test_readme_quotes_the_committed_summary():
    """experiments/world_paper/README.md holds the committed summary's tables, verbatim."""
    summary = (ROOT / "experiments" / "world_paper" / "results" / "summary.md").read_text()
    readme = (ROOT / "experiments" / "world_paper" / "README.md").read_text()
    tables = [block for block in summary.split("\n\n") if block.startswith("| ")]
    assert tables and all(block in readme for block in tables)
