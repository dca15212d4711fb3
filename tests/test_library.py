"""The library without the CLI: `clap.evaluate` and its `Report`, the README's walkthrough, and a CLI that
only parses arguments."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import clap
from clap.cli.main import main
from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldSpec
from clap.errors import ClapError

REPO = Path(__file__).resolve().parents[1]
SPEC = WorldSpec(image_types=("sketch", "photograph"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("libworld")
    render_world(root, "domains", 4, seed=5, spec=SPEC, progress=False)
    return root


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    out = tmp_path_factory.mktemp("libadapter") / "clap"
    clap.train_adapter("text", out, data={"classes": "world", "batch_size": 16, "window": 20},
                       trainer={"max_steps": 20, "enable_progress_bar": False, "logger": False,
                                "enable_model_summary": False, "default_root_dir": str(out.parent / "runs")}, seed=3)
    return out


def _comparable(doc: dict) -> dict:
    """A report without what differs between two runs: its creation time and each task's seconds."""
    doc = {k: v for k, v in doc.items() if k != "created"}
    doc["results"] = {k: v for k, v in doc["results"].items() if k != "task_seconds"}
    doc["statistics"] = {**doc["statistics"], "bootstrap": {k: v for k, v in doc["statistics"]["bootstrap"].items()
                                                            if k != "seconds"}}
    return doc


def _namespace_reach(command: list[str]) -> tuple[int, set[str]]:
    """Run the CLI, noting the repository files whose functions receive the argparse Namespace."""
    import argparse
    import sys

    reached = set()

    def watch(frame, event, arg):
        if event == "call" and any(isinstance(v, argparse.Namespace) for v in frame.f_locals.values()):
            reached.add(frame.f_code.co_filename)

    sys.setprofile(watch)
    try:
        code = main(command)
    finally:
        sys.setprofile(None)
    return code, {Path(f).resolve().relative_to(REPO).as_posix() for f in reached
                  if Path(f).resolve().is_relative_to(REPO)}


def test_evaluate_is_clap_eval(world, adapter, tmp_path, capsys):
    """The same options give the same document from Python as from `clap eval` (figures named alike); the CLI
    builds its options once at the edge: no function outside clap/cli/ receives the argparse Namespace (the issue
    counted 25 files before)."""
    report = clap.evaluate(world, adapters=[f"CLAP={adapter}@0.5"], tasks="zeroshot", n_boot=200, progress=False)
    code, reached = _namespace_reach(["eval", "zeroshot", "--dataset", str(world), "--adapter", f"CLAP={adapter}@0.5",
                                      "--n-boot", "200", "--out", str(tmp_path / "cli"), "--no-progress"])
    assert code == 0
    assert reached and all(f.startswith("clap/cli/") for f in reached), sorted(reached)
    from_cli = json.loads((tmp_path / "cli" / "zeroshot.json").read_text())
    assert _comparable(report.to_dict()) == _comparable(from_cli)
    assert report.markdown() in capsys.readouterr().out
    gain = report.statistics["differences"]["zeroshot"]["CLAP"]["C"]
    rows = report.results["zeroshot"]
    assert gain["difference"] == pytest.approx(rows["CLAP"]["mean"]["C"] - rows["CLIP"]["mean"]["C"])



def test_report_saves_what_to_dict_holds_with_its_figures(world, adapter, tmp_path):
    report = clap.evaluate(world, adapters={"CLAP": [str(adapter)]}, tasks=("alpha",),
                           options=clap.EvalOptions(alphas=[0, 1], progress=False))
    assert report.results["alpha"]["plot"] == "alpha_sweep.png" and not (tmp_path / "alpha_sweep.png").exists()
    json_path, md_path = report.save(tmp_path)
    assert json.loads(json_path.read_text()) == report.to_dict() and (tmp_path / "alpha_sweep.png").is_file()
    assert md_path.read_text().endswith(report.markdown())
    with pytest.raises(ClapError, match="exists from an earlier run"):
        report.save(tmp_path)
    report.save(tmp_path, overwrite=True)


def test_evaluate_takes_the_objects_a_user_holds(world, adapter):
    """A Backbone object, an adapter object, (path, alpha) pairs, "PATH@ALPHA" in a mapping, one template string and
    one shot count give the same numbers as the string forms the CLI passes."""
    by_strings = clap.evaluate(world, adapters=[f"CLAP={adapter}@0.5"], tasks=("zeroshot", "fewshot"), shots=[1],
                               seeds=[0], templates=["a sketch of a {}."], n_boot=100, progress=False)
    held = clap.Disentangler.from_pretrained(adapter)
    forms = [{"CLAP": (held, 0.5)}, {"CLAP": (str(adapter), 0.5)}, {"CLAP": f"{adapter}@0.5"}, f"CLAP={adapter}@0.5"]
    for adapters in forms:
        report = clap.evaluate(world, backbone=clap.load_backbone(), adapters=adapters, tasks=("zeroshot", "fewshot"),
                               shots=1, seeds=0, templates="a sketch of a {}.", n_boot=100, progress=False)
        assert report.results["zeroshot"] == by_strings.results["zeroshot"], adapters
        assert report.results["fewshot"] == by_strings.results["fewshot"], adapters
        assert report.statistics["differences"] == by_strings.statistics["differences"], adapters
    assert report.to_dict()["device_option"] == "auto" and report.to_dict()["backbone"]["device"] == "cpu"
    assert "## Zero-shot accuracy (%)\n\nPC template: 'a sketch of a {}.'\n" in report.markdown()
    in_memory = clap.evaluate(world, adapters={"CLAP": (held, 0.5)}, tasks="zeroshot", n_boot=100, progress=False)
    assert in_memory.to_dict()["models"]["CLAP"]["adapter"] == "(in memory)"


@pytest.mark.parametrize("adapters, message", [
    ([object()], "adapters: a object in a list has no name; give a mapping such as {'CLAP': adapter}"),
    ("adapters/clap", "adapter 'adapters/clap' must look like NAME=PATH"),
    ({"CLAP": 3}, "adapter 'CLAP' must be an adapter \\(Disentangler\\), a path"),
    ({"CLAP": ("a", 0.5, 1)}, "a tuple must be \\(adapter or path, alpha\\), got 3 items"),
    ({"CLAP": ("a", -1.0)}, "adapter 'CLAP' alpha = -1.0: expected a finite number >= 0"),
    ({"CL#AP": "a"}, "without '#'"),
])
def test_adapters_in_a_form_that_names_nothing_are_one_line(world, adapters, message):
    with pytest.raises(ClapError, match=message) as error:
        clap.evaluate(world, adapters=adapters)
    assert "\n" not in str(error.value)


def test_library_errors_name_arguments_and_the_cli_names_its_flags(world, tmp_path, capsys):
    """The same fault reads `ood_classes` from Python and --ood-classes from the command line."""
    with pytest.raises(ClapError, match="^`ood_classes`: \\['nope'\\] must be classes of the dataset") as error:
        clap.evaluate(world, tasks="ood", ood_classes=["nope"], progress=False)
    assert "--" not in str(error.value)
    assert main(["eval", "ood", "--dataset", str(world), "--ood-classes", "nope", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("clap: error: --ood-classes: ['nope'] must be classes of the dataset")


def test_flags_replace_argument_names_only_where_the_command_has_them():
    from clap.cli.main import as_flags, build_parser, command_parser

    parser = build_parser()
    evaluate, train = command_parser(parser, "eval"), command_parser(parser, "train")
    text = "choose another `out` or pass `overwrite`; `adapters` NAME=PATH; `nothing` here; `clap info`"
    assert as_flags(text, evaluate) == (
        "choose another --out or pass --overwrite; --adapter NAME=PATH; `nothing` here; `clap info`")
    assert as_flags("use `data` SceneDataModule", train) == "use --data SceneDataModule"
    assert as_flags("choose another `out`", command_parser(parser, "world")) == "choose another --out"
    assert as_flags(text, None) == text


def test_backbone_of_the_wrong_kind_is_one_line(world):
    with pytest.raises(ClapError, match="backbone must be a Backbone \\(clap.load_backbone\\(\\)\\) or a mapping"):
        clap.evaluate(world, backbone="ViT-B-16")


@pytest.mark.parametrize("options, message", [
    ({"shot": [1]}, "unknown evaluation option 'shot'"),
    ({"n_boot": 5}, r"n_boot = 5: expected an integer >= 100"),
    ({"eps": ["8/255", "2"]}, "must be in \\(0, 1\\]"),
    ({"protocol": "pgd"}, "protocol = 'pgd'"),
    ({"templates": ["a photo"]}, "`templates`: template .a photo. has no slot"),
])
def test_bad_options_are_one_line_errors(world, options, message):
    with pytest.raises(ClapError, match=message) as error:
        clap.evaluate(world, **options)
    assert "\n" not in str(error.value)


def test_unknown_task_is_refused_before_loading(tmp_path):
    with pytest.raises(ClapError, match="unknown task 'zero-shot'; choose from zeroshot, fewshot"):
        clap.evaluate(tmp_path, tasks=["zero-shot"])
    with pytest.raises(ClapError, match="no task given; choose from"):
        clap.evaluate(tmp_path, tasks=[])


def test_the_readme_walkthrough_runs(tmp_path, monkeypatch):
    """The README's Python walkthrough, as written, with 30 training steps instead of 3000 and 2 images a class."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    code = re.search(r"<!-- walkthrough -->\n```python\n(.*?)```\n<!-- /walkthrough -->", text, re.S)[1]
    assert '"max_steps": 3000' in code and "images_per_class=4" in code
    code = code.replace('"max_steps": 3000', '"max_steps": 30').replace("images_per_class=4", "images_per_class=2")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README walkthrough", "exec"), {})
    report = json.loads((tmp_path / "study" / "report" / "zeroshot+fewshot.json").read_text())
    assert set(report["results"]["zeroshot"]) == {"CLIP", "CLAP#1", "CLAP#2"}
    assert report["statistics"]["differences"]["zeroshot"]["CLAP"]["C"]["seeds"] == 2
    assert all(m["alpha"] is not None for name, m in report["models"].items() if name != "CLIP")


PROTOCOL_CALLS = {"run_zeroshot", "run_fewshot", "run_adversarial", "run_probe", "tsne_figures", "run_alpha",
                  "ood_records", "run_openness", "differences", "Resamples", "seed_summary", "ood_sets",
                  "openness_groups", "statistics"}


@pytest.mark.parametrize("path", sorted((REPO / "clap" / "cli").glob("*.py")), ids=lambda p: p.name)
def test_the_cli_runs_no_protocol_itself(path):
    """Commands parse arguments and call the library: none calls a protocol or the statistics directly."""
    names = {node.attr if isinstance(node, ast.Attribute) else node.id
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, (ast.Name, ast.Attribute))}
    assert not names & PROTOCOL_CALLS, f"{path.name} calls {names & PROTOCOL_CALLS}"


def test_bf16_encoders_on_the_cpu_keep_their_own_feature_cache(world, adapter, tmp_path):
    """precision="bf16" encodes under CPU autocast: accuracies within 5 points of fp32's, features cached under
    their own key (an fp32 run never reads bf16 features)."""
    kwargs = dict(adapters=[f"CLAP={adapter}@0.5"], tasks="zeroshot", n_boot=100, progress=False,
                  cache=str(tmp_path / "cache"))
    full, half = clap.evaluate(world, **kwargs), clap.evaluate(world, precision="bf16", **kwargs)
    for model, rows in full.results["zeroshot"].items():
        for form in ("C", "PC", "CP"):
            assert abs(half.results["zeroshot"][model]["mean"][form] - rows["mean"][form]) <= 0.05
    cached = {p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    assert len(cached) == 2 * len(SPEC.image_types), cached
    assert half.setup["backbone"]["precision"] == "bf16" and full.setup["backbone"]["precision"] == "fp32"


def test_openness_reports_why_it_fails(world, adapter, tmp_path):
    """`openness` adds the analysis: margins (median, plotted), alignment, uniformity, and for each target
    vocabulary 3 adversarial classes with the target accuracy under them, with intervals for the differences."""
    report = clap.evaluate(world, adapters=[f"CLAP={adapter}@0.5"], tasks="openness", orders=1, n_boot=100,
                           progress=False)
    rows = report.results["openness_analysis"]
    for model in ("CLIP", "CLAP"):
        mean = rows[model]["mean"]
        assert -1 < mean["margin_median"] < 1 and 0 <= mean["alignment"] <= 4 and mean["uniformity"] < 0
        assert 0 <= mean["adversarial_acc"] <= mean["target_acc"] <= 1
        chosen = report.results["openness_adversarial"][model]["sketch"]
        assert len(chosen) == 8 and all(len(c) == 3 for c in chosen.values())
    differences = report.statistics["differences"]["openness_analysis"]["CLAP"]
    assert set(differences) >= {"margin_median", "alignment", "uniformity", "adversarial_acc", "adversarial_drop"}
    report.save(tmp_path)
    assert (tmp_path / "openness_margins.png").is_file() and "Why openness fails" in report.markdown()
