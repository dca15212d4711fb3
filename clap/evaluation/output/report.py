"""Evaluation reports: one JSON per run and Markdown tables in the form of the paper's tables."""

from __future__ import annotations

import datetime
import json
import math
import platform
from importlib import metadata
from pathlib import Path

from clap import __version__
from clap.defaults import ADVERSARIAL_CLASSES
from clap.errors import ClapError
from clap.evaluation.statistics.stats import direction
from clap.fileio import write_text_atomic

VERSIONED = ("torch", "open_clip_torch", "transformers", "lightning", "scikit-learn")

ZS_COLUMNS = ("C", "CP", "PC", "NC", "NC_draw_std", "ENS", "MAX", "R", "R_null", "gap2", "delta", "Delta_NC")
SQUARED = ("gap2",)  # statistics in squared accuracy, printed in points^2 (x 10^4)
RAW = ("margin_median", "alignment", "uniformity")  # cosines and distances: printed as they are
ANALYSIS_COLUMNS = (*RAW, "target_acc", "adversarial_acc", "adversarial_drop")
OOD_COLUMNS = ("AUROC", "FPR95", "AUPR_in", "AUPR_out")
ANOMALY_COLUMNS = ("AUROC", "AP", "FPR95")
OPENNESS_COLUMNS = ("Acc-C", "Acc-E", "Acc-S", "full", "E_drop", "S_drop")


def _pct(value, scale: float = 100) -> str:
    """A percentage (points^2 with scale 1e4); a (mean, std) pair over adapter seeds prints as 'mean ± std'."""
    if isinstance(value, tuple):
        return f"{scale * value[0]:.1f} ± {scale * value[1]:.1f}"
    return f"{scale * value:.1f}"


def _cell(metric: str, value) -> str:
    """A table value: a percentage, or points^2 for a squared statistic."""
    return _pct(value, 1e4 if metric in SQUARED else 100)


def signed_points(metric: str, d: dict) -> tuple[str, str]:
    """A difference and its interval in points (points^2 for a squared statistic)."""
    name = metric.split(" ")[0]
    if name in RAW:
        return f"{d['difference']:+.4f}", f"[{d['low']:+.4f}, {d['high']:+.4f}]"
    scale, unit = (1e4, " pt²") if name in SQUARED else (100, "")
    return f"{scale * d['difference']:+.1f}{unit}", f"[{scale * d['low']:+.1f}, {scale * d['high']:+.1f}]"


def _num(value, digits: int = 3) -> str:
    if isinstance(value, tuple):
        return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def zeroshot_table(results: dict) -> str:
    """Rows: domain x model; columns: ZS(C), ZS(CP), ZS(PC), ZS(NC), R, delta, Delta(NC) in %, gap2 in points^2."""
    rows = []
    domains = list(next(iter(results.values())))
    for domain in domains:
        for model, per_domain in results.items():
            row = per_domain[domain]
            rows.append([domain, model] + [_cell(c, row[c]) if c in row else "-" for c in ZS_COLUMNS])
    header = ["domain", "model", "ZS(C)", "ZS(CP)", "ZS(PC)", "ZS(NC)", "NC sd over draws", "ens. mean", "ens. max",
              "R", "R's noise floor", "gap² (pt², noise-corrected)", "δ", "Δ(NC)"]
    return _table(header, rows)


def fewshot_table(results: dict) -> str:
    """Rows: domain x model; columns: shots, mean ± std accuracy in %."""
    first = next(iter(results.values()))
    domains = list(first)
    shots = list(first[domains[0]])
    def cell(row: dict) -> str:  # seed groups: mean ± std over adapter seeds of the probe-seed means
        return _pct(row["mean"]) if isinstance(row["mean"], tuple) else f"{_pct(row['mean'])} ± {_pct(row['std'])}"

    rows = [[d, m] + [cell(r[d][k]) for k in shots] for d in domains for m, r in results.items()]
    return _table(["domain", "model"] + [f"{k}-shot" for k in shots], rows)


def adversarial_table(results: dict) -> str:
    """Rows: model x classifier x attack (mean over domains); columns: clean, then accuracy at each eps in %."""
    rows, epsilons = [], []
    for model, heads in results.items():
        for head, per_domain in heads.items():
            mean = per_domain["mean"]
            for attack in (k for k in mean if k != "clean"):
                epsilons = list(mean[attack])
                rows.append([model, head, attack, _pct(mean["clean"])] + [_pct(mean[attack][e]) for e in epsilons])
    return _table(["model", "classifier", "attack", "clean", *[f"eps {e}" for e in epsilons]], rows)


def probe_table(results: dict) -> str:
    """Rows: factor x model; columns: text recognition, variance share, probe accuracy."""
    factors = list(next(iter(results.values())))
    rows = [[f, m, _pct(r[f]["recognition"]), _num(r[f]["variance_share"]), _pct(r[f]["probe"])]
            for f in factors for m, r in results.items() if f in r]
    return _table(["factor", "model", "text recognition (%)", "variance share", "probe (%)"], rows)


def alpha_table(results: dict) -> str:
    rows = []
    for model, sweep in results.items():
        if model == "plot":
            continue
        for alpha, row in sweep.items():
            rows.append([model, alpha] + [_pct(row[c]) for c in ("C", "CP", "PC", "NC")])
    return _table(["model", "alpha", "ZS(C)", "ZS(CP)", "ZS(PC)", "ZS(NC)"], rows)


def ood_table(results: dict) -> str:
    """Rows: model x score (mean over domains); columns: AUROC, FPR95, AUPR-In, AUPR-Out in %."""
    rows = [[model, score] + [_pct(m[k]) for k in OOD_COLUMNS]
            for model, per_domain in results.items() for score, m in per_domain["mean"].items()]
    return _table(["model", "score", "AUROC", "FPR95", "AUPR-In", "AUPR-Out"], rows)


def anomaly_table(results: dict) -> str:
    """Rows: model x score (mean over domains); columns: pixel AUROC, AP, FPR95 in %."""
    rows = [[model, score] + [_pct(m[k]) for k in ANOMALY_COLUMNS]
            for model, per_domain in results.items() for score, m in per_domain["mean"].items()]
    return _table(["model", "score", "AUROC", "AP", "FPR95"], rows)


def openness_table(results: dict) -> str:
    """Rows: model (mean over domains); columns: Acc-C, Acc-E, Acc-S, full-vocabulary accuracy, drops in %."""
    rows = [[model] + [_pct(per_domain["mean"][k]) for k in OPENNESS_COLUMNS] for model, per_domain in results.items()]
    return _table(["model", "Acc-C", "Acc-E", "Acc-S", "full vocabulary", "E drop", "S drop"], rows)


def openness_analysis_table(results: dict) -> str:
    """Rows: model (mean over domains); columns: margin median, alignment, uniformity (as they are), target
    accuracy alone and with the adversarial classes, and the drop, in %."""
    rows = [[model] + [_num(per_domain["mean"][k], 4) if k in RAW else _pct(per_domain["mean"][k])
                       for k in ANALYSIS_COLUMNS] for model, per_domain in results.items()]
    header = ["model", "margin (median)", "alignment", "uniformity", "target vocabulary alone",
              f"with {ADVERSARIAL_CLASSES} adversarial classes", "drop"]
    return _table(header, rows)


def differences_table(differences: dict) -> str:
    """Rows: task x model x metric; the difference in points with its 95% interval (two-level bootstrap), the
    images and seeds behind it, and its direction read off the interval."""
    rows = []
    for task, by_model in differences.items():
        for model, metrics in by_model.items():
            for metric, d in metrics.items():
                if "@" in metric and not metric.endswith(f"@{SHOWN_EPS}"):
                    continue
                seeds = f"{d.get('seeds', 1)}" + (f" vs {d['base_seeds']}" if "base_seeds" in d else "")
                rows.append([task, model, metric, *signed_points(metric, d), str(d["n"]), seeds,
                             direction(d["low"], d["high"])])
    header = ["task", "model", "metric", "difference (points)", "95% interval", "images", "seeds", "interval says"]
    return _table(header, rows)


TABLES = {
    "zeroshot": ("Zero-shot accuracy (%)", zeroshot_table),
    "fewshot": ("Few-shot linear probe (%)", fewshot_table),
    "adversarial": ("Adversarial robustness (%) against eps", adversarial_table),
    "probe": ("Disentanglement of image features", probe_table),
    "alpha": ("Alpha sweep (mean over domains)", alpha_table),
    "zeroshot_repe": ("Zero-shot accuracy with REPE (%)", zeroshot_table),
    "ood": ("OOD detection (%; mean over domains; FPR95 lower is better)", ood_table),
    "ood_repe": ("OOD detection with REPE (%)", ood_table),
    "anomaly": ("Pixel-wise anomaly segmentation (%; anomaly pixels positive, void ignored; mean over image types; "
                "FPR95 lower is better)", anomaly_table),
    "openness": ("Vocabulary openness (%; mean over domains)", openness_table),
    "openness_repe": ("Vocabulary openness with REPE (%)", openness_table),
    "openness_analysis": ("Why openness fails (mean over domains; lower alignment and uniformity are better)",
                          openness_analysis_table),
    "openness_analysis_repe": ("Why openness fails, with REPE", openness_analysis_table),
}


SEED_COLLAPSED = tuple(TABLES)
PLOTS = {"adversarial_plot": "Robust accuracy against eps", "ood_plot": "OOD score histograms and ROC curves",
         "anomaly_plot": "Scenes, anomaly ground truth and heat maps",
         "openness_plot": "Accuracy against vocabulary size", "openness_margins_plot": "Margin distributions"}
SHOWN_EPS = "8/255"  # the Markdown lists attack differences at the paper's budget; the JSON has every eps


def pc_templates_used(results: dict) -> dict[str, list[str]]:
    """{task: the PC templates its zero-shot classes were scored with}, for the tasks that record them."""
    found = {"zeroshot": results.get("prompt_templates", {}).get("PC"), "openness": results.get("openness_templates"),
             "ood": results.get("ood_split", {}).get("templates", {}).get("MCM/MaxLogit/Energy")}
    return {task: list(t) for task, t in found.items() if t}


def template_note(task: str, results: dict) -> str:
    """The line under a table naming the template its PC prompt used (a `--templates` run reads otherwise alike)."""
    templates = pc_templates_used(results).get(task.removesuffix("_repe"))
    if not templates:
        return ""
    shown = "; ".join(f"'{t}'" for t in templates)
    return f"PC template{'s' * (len(templates) > 1)}: {shown}"


def markdown(results: dict, statistics: dict | None = None) -> str:
    """All tables of a run's results; seed groups as mean ± std over seeds, then the differences to CLIP."""
    statistics = statistics or {}
    named = results.get("ood_split", {}).get("named_in_training")
    shown = mark_named(collapse_seeds(results, statistics.get("seeds", {})), named or {})
    parts = []
    for task, (title, render) in TABLES.items():
        if task in shown and shown[task]:
            note = template_note(task, results)
            parts.append(f"## {title}\n\n{note + chr(10) * 2 if note else ''}{render(shown[task])}\n")
    for key, title in PLOTS.items():
        if results.get(key):
            parts.append(f"{title}: {results[key]}\n")
    if "tsne" in results:
        parts.append("## t-SNE\n\n" + "\n".join(f"- {m}: {p}" for m, p in results["tsne"].items()) + "\n")
    if named:
        parts.append(f"Note: rows marked {NAMED_CLASS} come from adapters whose training data named or showed the "
                     "held-out OOD classes (no open-set test): "
                     + "; ".join(f"{m}: {', '.join(c)}" for m, c in named.items()) + "\n")
    if any(statistics.get("differences", {}).values()):
        attacks = f"; attacks at eps {SHOWN_EPS}" if "adversarial" in statistics["differences"] else ""
        inside = ("; a metric 'A (vs B, same model)' is A - B inside that model, CLIP's own included"
                  if "same model)" in json.dumps(statistics["differences"]) else "")
        parts.append("## Differences to CLIP (95% two-level bootstrap: training seeds, then images (scenes) within "
                     f"each domain (within each class for openness), paired; noise draws for ZS(NC), shot draws for "
                     f"few-shot and the attacked 1-shot probe{attacks}{inside})"
                     f"\n\n{differences_table(statistics['differences'])}\n")
    if statistics.get("pairs"):
        by_task: dict = {}
        for pair, tasks in statistics["pairs"].items():
            for task, metrics in tasks.items():
                by_task.setdefault(task, {})[pair] = metrics
        parts.append(f"## Differences between adapters (same form)\n\n{differences_table(by_task)}\n")
    return "\n".join(parts)


NAMED_CLASS = "(named-class OOD)"


def mark_named(shown: dict, named: dict[str, list[str]]) -> dict:
    """The OOD tables' rows of models (or seed groups) whose training data named the held-out classes, marked."""
    groups = {m.split("#")[0] for m in named} | set(named)
    out = dict(shown)
    for task in ("ood", "ood_repe"):
        if task in shown:
            out[task] = {(f"{m} {NAMED_CLASS}" if m in groups else m): v for m, v in shown[task].items()}
    return out


def collapse_seeds(results: dict, seeds: dict) -> dict:
    """Results for display: each seed group replaces its members, with (mean, std) pairs as leaves."""
    shown = dict(results)
    for task in SEED_COLLAPSED:
        if task not in seeds or task not in results:
            continue
        members = {m for group in seeds[task] for m in results[task] if m.startswith(f"{group}#")}
        by_model = {m: v for m, v in results[task].items() if m not in members}
        shown[task] = by_model | {g: _pairs(s["mean"], s["std"]) for g, s in seeds[task].items()}
    return shown


def _pairs(mean, std):
    if isinstance(mean, dict):
        return {k: _pairs(mean[k], std[k]) for k in mean}
    return (mean, std)


def versions() -> dict[str, str | None]:
    """Python and the installed versions of the libraries that decide the numbers."""
    found: dict[str, str | None] = {"python": platform.python_version(), "clap": __version__}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def report_paths(out_dir: str | Path, task: str) -> tuple[Path, Path]:
    return Path(out_dir) / f"{task}.json", Path(out_dir) / f"{task}.md"


def claim_report(out_dir: str | Path, task: str, overwrite: bool = False) -> None:
    """Refuse, before any work, to replace an earlier run's report unless asked to."""
    existing = [p for p in report_paths(out_dir, task) if p.exists()]
    if existing and not overwrite:
        raise ClapError(f"{existing[0]} exists from an earlier run; choose another `out` or pass `overwrite`")


def report_document(task: str, setup_info: dict, results: dict, run: dict, statistics: dict | None = None,
                    created: str | None = None) -> dict:
    """The JSON report: versions, the setup, the results and the statistics (strict JSON: NaN as null)."""
    created = created or datetime.datetime.now().isoformat(timespec="seconds")
    return finite({"clap_version": __version__, "task": task, "created": created, **run, "versions": versions(),
                   **setup_info, "results": results, "statistics": statistics or {}})


def write_report(out_dir: str | Path, doc: dict, body: str) -> tuple[Path, Path]:
    """Write <task>.json (a `report_document`) and <task>.md (its tables, `body`) into out_dir, atomically."""
    json_path, md_path = report_paths(out_dir, doc["task"])
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json_path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    write_text_atomic(md_path, f"# clap evaluation: {doc['task']}\n\n{protocol_line(doc)}\n\n{body}")
    return json_path, md_path


def finite(value):
    """The tree with NaN and infinities as null: strict JSON, which every JSON reader accepts."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def protocol_line(run: dict) -> str:
    """What was measured how, in one sentence for the Markdown report."""
    protocol = run.get("protocol", {})
    said = [text.format(protocol[key]) for key, text in (("fewshot_scoring", "few-shot probes scored on {} images"),
                                                          ("attack_inputs", "attacks perturb {}")) if key in protocol]
    details = f" ({'; '.join(said)})" if said else ""
    return f"Protocol: {protocol.get('name', 'not recorded')}{details}; seed {run.get('seed')}."
