"""The paper's claims read off a report's statistics."""

from __future__ import annotations

from clap.evaluation.claims import claims_table, verdict


def d(diff, low, high):
    return {"difference": diff, "low": low, "high": high, "n": 100, "contains_zero": low <= 0 <= high}


def test_verdicts_follow_the_interval_and_the_claimed_side():
    assert verdict(d(0.05, 0.01, 0.09), 1) == "reproduces"
    assert verdict(d(-0.05, -0.09, -0.01), 1) == "does not reproduce"
    assert verdict(d(-0.05, -0.09, -0.01), -1) == "reproduces"
    assert verdict(d(0.01, -0.02, 0.04), 1).startswith("cannot be told")


def test_claims_table_reads_differences_pairs_and_class_separation():
    zeroshot = {"CLAP": {"R": d(-0.02, -0.03, -0.01), "gap2": d(-0.003, -0.005, -0.001), "C": d(0.0, -0.01, 0.01)}}
    report = {"statistics": {"differences": {"zeroshot": zeroshot,
                                             "fewshot": {"CLAP": {"1-shot": d(-0.04, -0.06, -0.02)}}},
                             "pairs": {"CLAP - Im.Aug": {"fewshot": {"1-shot": d(0.03, 0.01, 0.05)}}}},
              "results": {"probe": {"CLIP": {"class_name": {"variance_share": 0.5}},
                                    "CLAP#1": {"class_name": {"variance_share": 0.6}},
                                    "CLAP#2": {"class_name": {"variance_share": 0.4}}}}}
    table = claims_table(report)
    assert "| CLAP - CLIP, R | -2.0 [-3.0, -1.0] | reproduces |" in table
    assert ("| prompt spread shrinks (gap², noise-corrected: this row decides) | CLAP - CLIP, gap2 | -30.0 pt² "
            "[-50.0, -10.0] | reproduces |") in table  # a squared statistic in points^2
    assert "| 1-shot linear probe improves | CLAP - CLIP, 1-shot | -4.0 [-6.0, -2.0] | does not reproduce |" in table
    assert "zero-shot ZS(C) improves" in table and "cannot be told" in table
    assert "| CLAP beats Im.Aug | CLAP - Im.Aug, fewshot 1-shot | +3.0 [+1.0, +5.0] | reproduces |" in table
    assert "cannot be told (1/2 seeds)" in table
    assert "FGSM" not in table  # claims the report has no statistic for are left out, not invented
