"""Evaluation reports: one JSON per run and Markdown tables in the form of the paper's tables."""

from __future__ import annotations

import datetime
import json
import platform
from importlib import metadata
from pathlib import Path

from clap import __version__
from clap.errors import ClapError
from clap.fileio import write_text_atomic

VERSIONED = ("torch", "open_clip_torch", "transformers", "lightning", "scikit-learn")

ZS_COLUMNS = ("C", "CP", "PC", "NC", "R", "delta", "Delta_NC")
ADV_COLUMNS = ("clean", "FGSM", "PGD-20", "CW-20")


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def zeroshot_table(results: dict) -> str:
    """Rows: domain x model; columns: ZS(C), ZS(CP), ZS(PC), ZS(NC), R, delta, Delta(NC) in %."""
    rows = []
    domains = list(next(iter(results.values())))
    for domain in domains:
        for model, per_domain in results.items():
            row = per_domain[domain]
            rows.append([domain, model] + [_pct(row[c]) if c in row else "-" for c in ZS_COLUMNS])
    header = ["domain", "model", "ZS(C)", "ZS(CP)", "ZS(PC)", "ZS(NC)", "R", "δ", "Δ(NC)"]
    return _table(header, rows)


def fewshot_table(results: dict) -> str:
    """Rows: domain x model; columns: shots, mean ± std accuracy in %."""
    first = next(iter(results.values()))
    domains = list(first)
    shots = list(first[domains[0]])
    rows = [[d, m] + [f"{_pct(r[d][k]['mean'])} ± {_pct(r[d][k]['std'])}" for k in shots]
            for d in domains for m, r in results.items()]
    return _table(["domain", "model"] + [f"{k}-shot" for k in shots], rows)


def adversarial_table(results: dict) -> str:
    """Rows: model x classifier (mean over domains); columns: clean and attacked accuracy in %."""
    rows = []
    for model, heads in results.items():
        for head, per_domain in heads.items():
            mean = per_domain["mean"]
            rows.append([model, head] + [_pct(mean[c]) if c in mean else "-" for c in ADV_COLUMNS])
    return _table(["model", "classifier", *ADV_COLUMNS], rows)


def probe_table(results: dict) -> str:
    """Rows: factor x model; columns: text recognition, variance share, probe accuracy."""
    factors = list(next(iter(results.values())))
    rows = [[f, m, _pct(r[f]["recognition"]), f"{r[f]['variance_share']:.3f}", _pct(r[f]["probe"])]
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


TABLES = {
    "zeroshot": ("Zero-shot accuracy (%)", zeroshot_table),
    "fewshot": ("Few-shot linear probe (%)", fewshot_table),
    "adversarial": ("Adversarial robustness (%), eps 8/255", adversarial_table),
    "probe": ("Disentanglement of image features", probe_table),
    "alpha": ("Alpha sweep (mean over domains)", alpha_table),
}


def markdown(results: dict) -> str:
    """All tables of a run's results."""
    parts = []
    for task, (title, render) in TABLES.items():
        if task in results and results[task]:
            parts.append(f"## {title}\n\n{render(results[task])}\n")
    if "tsne" in results:
        parts.append("## t-SNE\n\n" + "\n".join(f"- {m}: {p}" for m, p in results["tsne"].items()) + "\n")
    return "\n".join(parts)


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
        raise ClapError(f"{existing[0]} exists from an earlier run; choose another --out or pass --overwrite")


def write_report(out_dir: str | Path, task: str, setup_info: dict, results: dict, run: dict) -> tuple[Path, Path]:
    """Write <task>.json and <task>.md into out_dir; `run` holds the seed and the protocol."""
    doc = {"clap_version": __version__, "task": task, "created": datetime.datetime.now().isoformat(timespec="seconds"),
           **run, "versions": versions(), **setup_info, "results": results}
    json_path, md_path = report_paths(out_dir, task)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json_path, json.dumps(doc, indent=2) + "\n")
    write_text_atomic(md_path, f"# clap evaluation: {task}\n\n{protocol_line(run)}\n\n{markdown(results)}")
    return json_path, md_path


def protocol_line(run: dict) -> str:
    """What was measured how, in one sentence for the Markdown report."""
    protocol = run.get("protocol", {})
    return (f"Protocol: {protocol.get('name', '?')} (few-shot probes scored on {protocol.get('fewshot_scoring', '?')} "
            f"images; attacks perturb {protocol.get('attack_inputs', '?')}); seed {run.get('seed')}.")
