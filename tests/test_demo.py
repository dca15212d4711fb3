"""`clap demo` end to end on the embedded world, shrunk: render, train side by side, choose alpha, evaluate."""

from __future__ import annotations

import json

from clap.adapter.disentangler import Disentangler


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
