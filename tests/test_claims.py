"""The paper's claims read off a report's statistics."""

from __future__ import annotations

import numpy as np
import pytest

from clap.evaluation.output.claims import claims_table, verdict


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


def test_holm_adjusts_a_hand_made_family():
    from clap.evaluation.statistics.stats import holm

    # sorted: 0.01 (x4) = 0.04, 0.02 (x3) = 0.06, 0.03 (x2) = 0.06 (kept at least the previous), 0.5 (x1) = 0.5
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert holm([0.4, 0.6]) == pytest.approx([0.8, 0.8]) and holm([0.9, 0.9, 0.9]) == pytest.approx([1, 1, 1])


def test_bootstrap_p_counts_the_smaller_side():
    from clap.evaluation.statistics.stats import bootstrap_p, interval

    draws = np.r_[np.full(97, 0.1), np.full(3, -0.1)]
    assert bootstrap_p(draws) == pytest.approx(0.06)
    assert bootstrap_p(np.zeros(50)) == 1.0  # a difference that never moves is no evidence
    assert interval(0.1, draws)["p"] == pytest.approx(0.06)


def with_p(diff, low, high, p):
    return {**d(diff, low, high), "p": p}


def test_family_wise_column_keeps_only_what_survives_holm():
    zeroshot = {"CLAP": {"C": with_p(0.05, 0.01, 0.09, 0.001), "PC": with_p(0.02, 0.001, 0.04, 0.03),
                         "NC": with_p(0.01, -0.01, 0.03, 0.4), "Delta_NC": with_p(0.03, 0.002, 0.05, 0.02)}}
    table = claims_table({"statistics": {"differences": {"zeroshot": zeroshot}}})
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[2:]}
    assert rows["zero-shot ZS(C) improves"].endswith("| reproduces | reproduces |")  # 0.001 x 4 = 0.004
    # 0.02 x 3 = 0.06 and 0.03 x 2 = 0.06: both fail after correction though each passes at 95%
    assert rows["zero-shot ZS(PC) improves"].endswith("| reproduces | cannot be told after Holm (adjusted p 0.060) |")
    assert ("| does not reproduce | cannot be told after Holm (adjusted p 0.060) |"
            in rows["noise-prompt drop Delta(NC) shrinks"])
    assert "cannot be told (interval contains 0) | cannot be told (interval contains 0) |" in rows[
        "zero-shot ZS(NC) improves"]


def test_a_frozen_rival_or_a_floor_is_not_testable():
    report = {"models": {"CLIP": {"alpha": 1.0, "route": None}, "CLAP#1": {"alpha": 1.0, "route": "text"},
                         "Im.Aug#1": {"alpha": 0.0, "route": "image"}, "Im.Aug#2": {"alpha": 0, "route": "image"}},
              "statistics": {
                  "differences": {"adversarial": {"CLAP": {"1-shot linear/PGD-20@8/255": {
                      **with_p(0.0, 0.0, 0.0, 1.0), "value": 0.0, "base_value": 0.0}}}},
                  "pairs": {"CLAP - Im.Aug": {"zeroshot": {"C": with_p(0.07, 0.05, 0.09, 0.0)}}}}}
    table = claims_table(report)
    assert ("| CLAP beats Im.Aug | CLAP - Im.Aug, zeroshot C | +7.0 [+5.0, +9.0] | not testable: Im.Aug chose alpha 0 "
            "on every seed (it is the frozen model) |") in table
    assert ("| PGD-20 gain, 1-shot | CLAP - CLIP, 1-shot linear/PGD-20@8/255 | +0.0 [+0.0, +0.0] | "
            "at floor (0% and 0%): not testable |") in table
    report["models"]["Im.Aug#2"]["alpha"] = 0.3  # one seed that moved: a real comparison
    assert "| CLAP - Im.Aug, zeroshot C | +7.0 [+5.0, +9.0] | reproduces | reproduces |" in claims_table(report)
