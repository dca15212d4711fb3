"""`clap demo` end to end on the embedded world, shrunk: render, train side by side, choose alpha, evaluate; and
experiments/world_paper/reproduce.py, which runs the demo at power and then AutoAttack, on the same shrunk run; the
READMEs' copies of both runs' committed results."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from clap.adapter.disentangler import Disentangler
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shrunk_reproduction(tmp_path_factory):
    """experiments/world_paper/reproduce.py on the shrunk demo (eps 1/255 and 8/255), run once for the tests of
    the demo and of the reproduction: its exit code, --out (the demo's folder), --results and what it printed."""
    from tests.shrunk import SMALL

    folder = tmp_path_factory.mktemp("world_paper")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = load_script("experiments/world_paper/reproduce.py").run(
            ["--out", str(folder / "run"), "--results", str(folder / "results"), "--autoattack-images", "1",
             "--autoattack-eps", "64/255", "--no-progress", "--", *SMALL, "--eps", "1/255", "8/255"])
    return SimpleNamespace(code=code, out=folder / "run", results=folder / "results", printed=printed.getvalue())


def test_demo_runs_every_stage_and_writes_the_report(shrunk_reproduction):
    """The shrunk demo, as experiments/world_paper/reproduce.py runs it (`clap demo` with its options)."""
    out, printed = shrunk_reproduction.out, shrunk_reproduction.printed
    assert shrunk_reproduction.code == 0
    assert "## The paper's claims in this run" in printed and "clap_seed2024: " in printed
    report = json.loads((out / "report" / "demo.json").read_text())
    assert list(report["models"]) == ["CLIP", "CLAP", "Im.Aug"]
    ood = json.loads((out / "report" / "demo_ood.json").read_text())
    assert list(ood["models"]) == ["CLIP", "CLAP (open set)", "CLIPN"]
    validated = ((report, "CLAP", "val"), (report, "Im.Aug", "val"), (ood, "CLAP (open set)", "val_open_set"))
    for doc, name, val in validated:
        chosen = doc["models"][name]["alpha_selection"]
        assert chosen["validation"] == str(out / "data" / val) and doc["models"][name]["alpha"] == chosen["alpha"]
    # the OOD test's adapters never saw the held-out shapes: no model is marked named-class
    assert ood["results"]["ood_split"]["named_in_training"] == {} and len(ood["results"]["ood_split"]["ood"]) == 8
    assert ood["models"]["CLAP (open set)"]["training_data"]["classes"] == 24
    assert set(report["results"]["stage_seconds"]) == {"render", "train", "alpha", "evaluate"}
    assert {"zeroshot", "fewshot", "adversarial", "openness"} <= set(report["results"]["task_seconds"])
    for run, steps in (("clap_seed2024", 30), ("imaug_seed2024", 20), ("clipn_seed2024", 20),
                       ("clap_open_set_seed2024", 30)):
        summary = json.loads((out / "adapters" / run / "training_summary.json").read_text())
        assert summary["steps"] == steps
    assert not Disentangler.from_pretrained(out / "adapters" / "clap_seed2024").is_identity()
    claims = (out / "report" / "claims.md").read_text()
    assert "| prompt spread shrinks (gap², noise-corrected: this row decides) | CLAP - CLIP, gap2 |" in claims
    imaug, clap = (report["models"][name]["training_data"] for name in ("Im.Aug", "CLAP"))
    assert imaug == {"route": "image", "classes": 32, "images": 64, "source": str(out / "data" / "imaug")}
    assert clap == {"route": "text", "classes": 32, "prompts": 32 * 480, "source": "world"}
    assert all((out / "report" / plot).is_file() for plot in ("adversarial_eps.png", "alpha_sweep.png",
                                                               "ood_scores.png", "openness_curves.png"))


def _demo_sections() -> str:
    """experiments/demo/README.md, minus signs as the reports write them."""
    from pathlib import Path

    readme = Path(__file__).resolve().parent.parent / "experiments" / "demo" / "README.md"
    return readme.read_text(encoding="utf-8").replace("−", "-")


def test_readme_quotes_the_committed_demo_run():
    """Every interval and every mean ± std experiments/demo/README.md quotes is in the committed run's reports,
    and the claims table is the committed one, verbatim."""
    import re
    from pathlib import Path

    results = Path(__file__).resolve().parent.parent / "experiments" / "demo" / "results"
    reports = "\n".join((results / name).read_text(encoding="utf-8")
                        for name in ("demo.md", "demo_ood.md", "claims.md"))
    flat = re.sub(r" \| \[", " [", reports)  # a table's "| +7.5 | [+5.5, +9.5] |" reads "+7.5 [+5.5, +9.5]"
    text = _demo_sections()
    prose = re.sub(r"\s+", " ", text)  # an interval wrapped over two lines is read whole
    intervals = re.findall(r"[+-]\d+\.\d+(?: pt²)? \[[+-]\d+\.\d+, [+-]\d+\.\d+\]", prose)
    spreads = re.findall(r"\d+\.\d+ ± \d+\.\d+", prose)
    assert len(intervals) > 30 and len(spreads) > 30
    assert [i for i in intervals if i not in flat] == []
    assert [s for s in spreads if s not in reports] == []
    claims = (results / "claims.md").read_text(encoding="utf-8")
    assert claims[claims.index("| paper"):].strip() in text


def test_the_demo_runs_at_the_size_asked_and_options_given_win():
    """`clap demo` is the quick size; `--size full` the committed run's; an option given overrides either."""
    import pytest

    from clap.data_gen.world.demo import FULL, QUICK, SIZES, DemoOptions
    from clap.errors import ClapError

    quick, full = DemoOptions(), DemoOptions(size=FULL, clap_steps=10)
    assert {name: getattr(quick, name) for name in SIZES[QUICK]} == {
        name: list(value) if isinstance(value, tuple) else value for name, value in SIZES[QUICK].items()}
    assert full.clap_steps == 10 and full.imaug_steps == SIZES[FULL]["imaug_steps"] and full.adapter_seeds == 3
    assert all(SIZES[QUICK][name] <= SIZES[FULL][name] for name in SIZES[QUICK] if name not in ("eps", "image_types"))
    assert set(SIZES[QUICK]["image_types"]) < set(SIZES[FULL]["image_types"])
    with pytest.raises(ClapError, match="size"):
        DemoOptions(size="huge")


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
