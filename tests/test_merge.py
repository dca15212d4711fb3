"""`clap report merge`: report JSONs -> one flat CSV + Markdown table."""

from __future__ import annotations

import csv
import json

from clap.cli.main import main


def write_report(path, task, results, protocol="pixel"):
    doc = {"task": task, "seed": 0, "protocol": {"name": protocol}, "dataset": {"root": "/data/world"},
           "backbone": {"family": "open_clip", "model": "tiny", "pretrained": None},
           "models": {"CLIP": {"alpha": 0.0}, "CLAP": {"alpha": 0.3, "adapter_sha256": "abc"}}, "results": results}
    path.write_text(json.dumps(doc))
    return path


def test_reports_merge_into_one_row_per_report_and_model(tmp_path, capsys):
    zs = write_report(tmp_path / "zeroshot.json", "zeroshot",
                      {"zeroshot": {"CLIP": {"mean": {"C": 0.5, "PC": 0.6}}, "CLAP": {"mean": {"C": 0.7, "PC": 0.7}}}})
    fs = write_report(tmp_path / "fewshot.json", "fewshot", {"fewshot": {
        "CLIP": {"mean": {"1": {"mean": 0.4, "std": 0.1}}}, "CLAP": {"mean": {"1": {"mean": 0.6, "std": 0.0}}}},
        "alpha": {"CLAP": {"0.1": {"C": 0.65}}, "plot": "alpha_sweep.png"}}, protocol="paper")
    assert main(["report", "merge", str(zs), str(fs), "--out", str(tmp_path / "table")]) == 0
    rows = list(csv.DictReader((tmp_path / "table.csv").open()))
    assert [(r["task"], r["model"]) for r in rows] == [("zeroshot", "CLIP"), ("zeroshot", "CLAP"),
                                                       ("fewshot", "CLIP"), ("fewshot", "CLAP")]
    assert rows[1]["zeroshot/mean/C"] == "0.7" and rows[1]["adapter_sha256"] == "abc"
    assert rows[3]["fewshot/mean/1/mean"] == "0.6" and rows[3]["alpha/0.1/C"] == "0.65"
    assert rows[2]["alpha/0.1/C"] == "" and rows[2]["protocol"] == "paper"
    assert "| zeroshot |" in (tmp_path / "table.md").read_text()
    assert "4 rows" in capsys.readouterr().out


def test_merge_refuses_what_is_not_a_report(tmp_path, capsys):
    (tmp_path / "x.json").write_text('{"a": 1}')
    assert main(["report", "merge", str(tmp_path / "x.json"), "--out", str(tmp_path / "t")]) == 2
    assert "not a clap evaluation report" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()


def test_merged_rows_name_the_template_of_each_report(tmp_path):
    """A default-template report and a `--templates` report read alike but for the template column."""
    rows = {}
    for name, template in (("default", "a photo of a {}"), ("given", "a sketch of a {}.")):
        path = write_report(tmp_path / f"{name}.json", "zeroshot", {
            "zeroshot": {"CLIP": {"mean": {"PC": 0.6}}, "CLAP": {"mean": {"PC": 0.7}}},
            "prompt_templates": {"PC": [template], "C": ["{}"]}})
        assert main(["report", "merge", str(path), "--out", str(tmp_path / name)]) == 0
        rows[name] = list(csv.DictReader((tmp_path / f"{name}.csv").open()))
    assert [r["templates"] for r in rows["default"]] == ["a photo of a {}"] * 2
    assert [r["templates"] for r in rows["given"]] == ["a sketch of a {}."] * 2
