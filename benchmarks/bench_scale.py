"""How evaluation's time and memory grow with the data: world renders of growing size through `clap.evaluate`, and
the anomaly task at two resolutions.

    python -m benchmarks.bench_scale [--images 2500 25000 250000] [--image-size 64] [--out /tmp/bench_scale]
    python -m benchmarks.bench_scale --memory-stages --images 250000   # where evaluate's memory goes

Per size: the world's domains layout (8 image types x 32 classes) rendered afresh with that many images in all
(a render and feature cache of an earlier run are deleted first: they would be resumed, not measured), then each
stage in a fresh process of its own, with the `clap` command's allocator settings (`clap.runtime.keep_freed_memory`;
wall time and its peak RSS): `render`; `encode` (the tiny CLIP's image
features into a feature cache); `evaluate` (`clap.evaluate` of zeroshot, fewshot (1 and 4 shots) and ood with CLIP
and a CLAP adapter given as 3 training seeds, reading the cache), split by the report into the protocols' own
time (`task_seconds`), the intervals' (`bootstrap.seconds`) and the rest (loading, setup, the report). The growth
exponent of a stage between two sizes is log(t2 / t1) / log(n2 / n1): 1 is linear. The features' own size
(images x dim x 4 bytes x models) is printed beside the peak RSS. Anomaly: `clap.evaluate(tasks="anomaly")` on 50
scenes of 1024 x 1024 pixels against 200 of 128 x 128 (two image types; the world's scenes are square, so the large
ones hold twice the pixels of 1024 x 512); its peak RSS should not follow the pixel count (64x per scene, 16x in
all). The adapters are trained here for
a few steps (their quality is not what is measured). `--memory-stages` instead runs evaluate's parts one after the
other in one process (setup, each task, the statistics) and records the resident memory after each, its peak, and
what numpy holds and what the process keeps after `malloc_trim(0)` once the tasks are done (saved as
<name>_memory.json). `--shards 3` (the default) also evaluates each size in 3 shards of its domains (`clap.evaluate(...,
shard="i/3")`, one process after another) and merges them (`clap.merge_shards`, in a process of its own): each
one's time and peak RSS, and whether the merged report equals the one run's, rows and intervals.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import save_result

WORKER = """
import json, sys, time
from benchmarks import bench_scale
from clap.runtime import keep_freed_memory
keep_freed_memory()  # as the `clap` command does
start = time.perf_counter()
result = getattr(bench_scale, sys.argv[1])(**json.loads(sys.argv[2]))
print("BENCH " + json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": bench_scale.peak_rss_mb(),
                             "result": result}))
"""


def status_mb(field: str) -> float:
    """A memory field of this process's /proc/self/status in MB (VmHWM, its peak resident memory: unlike
    ru_maxrss, not carried over from the forking parent; VmRSS, its resident memory now)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no /proc/self/status: this benchmark measures memory on Linux")


def peak_rss_mb() -> float:
    return status_mb("VmHWM")


def in_process(stage: str, **kwargs) -> dict:
    """Run one stage (a function of this module) in a fresh Python process: {seconds, peak_rss_mb, result}."""
    done = subprocess.run([sys.executable, "-c", WORKER, stage, json.dumps(kwargs)], capture_output=True, text=True,
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode or not lines:
        raise SystemExit(f"stage {stage} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("BENCH "):])


def render(root: str, per_class: int, size: int) -> None:
    """The world's domains layout: 8 image types x 32 classes x per_class images of size x size pixels."""
    from clap.data_gen.world.export import render_world
    from clap.data_gen.world.render import WorldSpec

    render_world(root, "domains", per_class, 0, WorldSpec(image_size=size), progress=False)


def encode(root: str, cache: str) -> dict:
    """The raw features of every image into the feature cache (what `clap eval --cache` reuses)."""
    from clap.backbones.loading import load_backbone
    from clap.data.domains import scan_domain_dataset
    from clap.evaluation.inputs.features import domain_features

    backbone = load_backbone()
    features = domain_features(backbone, scan_domain_dataset(root), cache, progress=False)
    return {"images": sum(len(f.labels) for f in features.values()), "dim": backbone.embed_dim}


def evaluate(root: str, cache: str, adapters: list[str], save: str | None = None, shard: str | None = None) -> dict:
    """zeroshot, fewshot and ood of CLIP and the CLAP seed group from the cached features (a `shard` of the domains
    only, given one): the report's times; the report saved into `save`, given one."""
    import clap

    report = clap.evaluate(root, adapters={"CLAP": adapters}, tasks=("zeroshot", "fewshot", "ood"), shots=[1, 4],
                           cache=cache, progress=False, shard=shard)
    if save:
        report.save(save, overwrite=True)
    return {"task_seconds": report.results["task_seconds"],
            "statistics": report.statistics["bootstrap"]["seconds"] if report.statistics else 0.0}


def merge(shards: list[str], whole: str) -> dict:
    """`clap.merge_shards` of the shards' reports: the statistics' time, and whether rows and intervals equal those of
    the report of one run (`whole`) exactly."""
    import clap

    report = clap.merge_shards(shards)
    one = json.loads(Path(whole).read_text(encoding="utf-8"))
    merged = json.loads(json.dumps(report.to_dict()))
    for doc in (one, merged):
        doc["results"].pop("task_seconds")
        doc["statistics"]["bootstrap"].pop("seconds")
    return {"statistics": report.statistics["bootstrap"]["seconds"],
            "identical": one["results"] == merged["results"] and one["statistics"] == merged["statistics"]}


def memory_stages(root: str, cache: str, adapters: list[str]) -> dict:
    """evaluate's parts one after the other in this process: resident memory (and its peak) after each."""
    import ctypes
    import tracemalloc

    from clap.evaluation.inputs.setup import build_setup
    from clap.evaluation.pipeline import evaluate as pipeline
    from clap.evaluation.pipeline.tasks import EvalOptions, TaskOutput, run_tasks

    def now() -> dict:
        return {"rss_mb": round(status_mb("VmRSS"), 1), "peak_mb": round(peak_rss_mb(), 1)}

    rows = {"imports": now()}
    options = EvalOptions(shots=[1, 4], cache=cache, progress=False)
    setup = build_setup(root, pipeline.adapter_specs({"CLAP": adapters}), None, cache, options.device, False,
                        progress=False, precision=options.precision)
    rows["setup"] = now()
    merged = TaskOutput({})
    tracemalloc.start()
    for task in ("zeroshot", "fewshot", "ood"):
        output = run_tasks(setup, [task], options)
        merged.rows.update(output.rows)
        merged.measures.update(output.measures)
        rows[task] = now()
    rows["numpy_held_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
    tracemalloc.stop()
    start = time.perf_counter()
    pipeline.statistics([*setup.models], options.n_boot, options.seed, merged.rows, merged.measures)
    rows["statistics"] = {**now(), "seconds": round(time.perf_counter() - start, 1)}
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    rows["after malloc_trim"] = now()
    return rows


def anomaly(root: str) -> dict:
    """The anomaly task (training-free scores) of CLIP on a scene render."""
    import clap

    report = clap.evaluate(root, tasks="anomaly", progress=False)
    return {"statistics": report.statistics["bootstrap"]["seconds"]}


def train_adapters(out: Path) -> list[str]:
    """Three CLAP adapters (text route, 200 steps): a seed group for the intervals."""
    import clap
    from clap.adapter.disentangler import SUMMARY_NAME

    paths = []
    for seed in (0, 1, 2):
        path = out / f"clap_seed{seed}"
        if not (path / SUMMARY_NAME).is_file():  # a rerun reuses them
            clap.train_adapter("text", path, data={"classes": "world", "batch_size": 32}, seed=seed,
                               trainer={"max_steps": 200, "enable_progress_bar": False, "logger": False,
                                        "enable_model_summary": False, "default_root_dir": str(out / "runs")})
        paths.append(str(path))
    return paths


def growth(sizes: list[int], seconds: list[float]) -> list[float]:
    """The growth exponent between consecutive sizes."""
    return [round(math.log(t2 / t1) / math.log(n2 / n1), 3)
            for (n1, t1), (n2, t2) in zip(zip(sizes, seconds), zip(sizes[1:], seconds[1:])) if t1 > 0 and t2 > 0]


def world_at(images: int, out: Path) -> tuple[int, Path, Path]:
    """Images per class and type for about `images` in all, and the render's and its feature cache's folders."""
    return max(2, round(images / (8 * 32))), out / f"world_{images}", out / f"cache_{images}"


def scale(images: int, size: int, out: Path, adapters: list[str], shards: int) -> dict:
    """Every stage at one size (and the evaluation in `shards` shards, merged)."""
    per_class, root, cache = world_at(images, out)
    for folder in (root, cache):  # a fresh render and encoding: a run before would resume, not render or encode
        shutil.rmtree(folder, ignore_errors=True)
    stages = {"render": in_process("render", root=str(root), per_class=per_class, size=size)}
    stages["encode"] = in_process("encode", root=str(root), cache=str(cache))
    whole = out / f"report_{images}"
    stages["evaluate"] = in_process("evaluate", root=str(root), cache=str(cache), adapters=adapters, save=str(whole))
    sharded = sharded_at(root, cache, adapters, shards, whole) if shards > 1 else None
    n = stages["encode"]["result"]["images"]
    report = stages["evaluate"]["result"]
    protocols, statistics = sum(report["task_seconds"].values()), report["statistics"]
    times = {"render": stages["render"]["seconds"], "encode": stages["encode"]["seconds"], "protocols": protocols,
             "statistics": statistics, "rest of evaluate": stages["evaluate"]["seconds"] - protocols - statistics}
    features_mb = n * stages["encode"]["result"]["dim"] * 4 * 2 / 2**20  # CLIP's and the adapter's
    return {"images": n, "image_size": size, "seconds": {k: round(v, 2) for k, v in times.items()},
            "statistics_share_of_evaluate": round(statistics / stages["evaluate"]["seconds"], 3),
            "peak_rss_mb": {k: round(v["peak_rss_mb"], 1) for k, v in stages.items()},
            "features_mb": round(features_mb, 1), "task_seconds": report["task_seconds"], "shards": sharded}


def sharded_at(root: Path, cache: Path, adapters: list[str], count: int, whole: Path) -> dict:
    """The evaluation in `count` shards, one process after another, then their merge: each one's time and peak RSS,
    and whether the merge equals the report of one run."""
    folder = whole.parent / f"{whole.name}_shards"
    runs = [in_process("evaluate", root=str(root), cache=str(cache), adapters=adapters, shard=f"{i}/{count}",
                       save=str(folder / f"shard-{i}-of-{count}")) for i in range(1, count + 1)]
    merged = in_process("merge", shards=[str(folder / f"shard-{i}-of-{count}" / "zeroshot+fewshot+ood.json")
                                         for i in range(1, count + 1)], whole=str(whole / "zeroshot+fewshot+ood.json"))
    return {"count": count, "shard_seconds": [round(r["seconds"], 1) for r in runs],
            "shard_peak_rss_mb": [round(r["peak_rss_mb"], 1) for r in runs],
            "merge_seconds": round(merged["seconds"], 1), "merge_statistics_seconds": merged["result"]["statistics"],
            "merge_peak_rss_mb": round(merged["peak_rss_mb"], 1), "identical_to_one_run": merged["result"]["identical"]}


def memory_at(images: int, size: int, out: Path, adapters: list[str]) -> dict:
    """`memory_stages` at one size, in a fresh process (the render and its cache made first where missing)."""
    per_class, root, cache = world_at(images, out)
    if not root.is_dir():
        in_process("render", root=str(root), per_class=per_class, size=size)
    in_process("encode", root=str(root), cache=str(cache))  # reads a complete cache back at once
    return in_process("memory_stages", root=str(root), cache=str(cache), adapters=adapters)["result"]


def anomaly_pair(out: Path) -> dict:
    """Peak RSS and time of the anomaly task: 50 scenes of 1024 px against 200 of 128 px."""
    from clap.data_gen.world.render import WorldSpec
    from clap.data_gen.world.scenes import render_scenes

    rows, spec = {}, WorldSpec(image_types=("photograph", "sketch"))  # two types: each gets anomalous scenes
    for scenes, size in ((200, 128), (50, 1024)):
        root = out / f"scenes_{scenes}x{size}"
        if not root.is_dir():
            render_scenes(root, scenes, seed=0, spec=spec, size=size, progress=False)
        run = in_process("anomaly", root=str(root))
        rows[f"{scenes} x {size}px"] = {"pixels": scenes * size * size, "seconds": round(run["seconds"], 1),
                                       "statistics_seconds": run["result"]["statistics"],
                                       "peak_rss_mb": round(run["peak_rss_mb"], 1)}
    small, large = rows.values()
    return {**rows, "peak_rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[2500, 25000, 250000])
    parser.add_argument("--image-size", type=int, default=64, help="the renders' image size (32 to 512)")
    parser.add_argument("--out", default="/tmp/bench_scale", help="working folder (renders, cache, adapters)")
    parser.add_argument("--no-anomaly", action="store_true", help="skip the anomaly pair")
    parser.add_argument("--anomaly-only", action="store_true", help="only the anomaly pair (saved as <name>_anomaly)")
    parser.add_argument("--name", default="scale", help="results file name under benchmarks/results/")
    parser.add_argument("--memory-stages", action="store_true", help="only evaluate's memory, part by part")
    parser.add_argument("--shards", type=int, default=3, help="also evaluate each size in this many shards and merge "
                        "them (1: no shards)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.anomaly_only:
        save_result(f"{args.name}_anomaly", anomaly_pair(out))
        return
    adapters = train_adapters(out / "adapters")
    if args.memory_stages:
        save_result(f"{args.name}_memory", {str(n): memory_at(n, args.image_size, out, adapters) for n in args.images})
        return
    rows = [scale(n, args.image_size, out, adapters, args.shards) for n in sorted(args.images)]
    sizes = [r["images"] for r in rows]
    exponents = {stage: growth(sizes, [r["seconds"][stage] for r in rows]) for stage in rows[0]["seconds"]}
    result = {"sizes": rows, "growth_exponents": exponents,
              "anomaly": None if args.no_anomaly else anomaly_pair(out),
              "wall_seconds": round(time.perf_counter() - start, 1)}
    save_result(args.name, result)


if __name__ == "__main__":
    main()
