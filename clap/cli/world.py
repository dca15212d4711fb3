"""`clap world render`: render the embedded content/style world to disk."""

from __future__ import annotations

import argparse
from pathlib import Path

from clap.options import NAME, PATH, SEED, Count


MAX_PER_CLASS = 100_000  # 25.6 million images of the domains layout: a typo's count is refused, not started
MAX_SCENES = 1_000_000


def add_parser(sub) -> None:
    from clap.data_gen.world.export import LAYOUTS
    from clap.data_gen.world.render import MIN_IMAGE_SIZE
    from clap.data_gen.world.scenes import MAX_SCENE_SIZE

    p = sub.add_parser("world", help="the rendered content/style world", description=__doc__.splitlines()[0])
    wsub = p.add_subparsers(dest="world_command", metavar="ACTION", required=True)
    r = wsub.add_parser("render", help="render images with their attribute records")
    r.add_argument("--out", required=True, type=PATH, help="output folder (resumable; a different render is refused)")
    r.add_argument("--images-per-class", type=Count(1, MAX_PER_CLASS), default=20,
                   help="per class (and per domain for 'domains')")
    r.add_argument("--seed", type=SEED, default=0, help="render seed (same seed, same images)")
    r.add_argument("--layout", default="all", choices=("all", *LAYOUTS, "scenes"),
                   help="'all' writes each image layout into a sub-folder of --out; 'scenes': canvases of several "
                        "objects with pixel label maps (anomaly segmentation), not part of 'all'")
    r.add_argument("--scenes", type=Count(1, MAX_SCENES), default=None, help="scenes to render (--layout scenes)")
    r.add_argument("--no-ood", action="store_true", help="scenes without anomalies (a decoder's training scenes)")
    r.add_argument("--classes", nargs="+", type=NAME, default=None, help="subset of the world's classes")
    r.add_argument("--open-set", action="store_true",
                   help="the in-distribution classes only: the world's held-out OOD shapes neither drawn nor named "
                        "(training data for a route whose OOD test holds them out)")
    r.add_argument("--image-types", nargs="+", type=NAME, default=None, help="subset of image types (the domains)")
    r.add_argument("--image-size", type=Count(MIN_IMAGE_SIZE, MAX_SCENE_SIZE), default=None,
                   help="pixels a side (default 64, at most 512; scenes 128, at most 1024)")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.set_defaults(run=run, on_interrupt="the images written so far are kept; rerun the same command to resume")


def run(args: argparse.Namespace) -> int:
    from clap.data_gen.world.export import LAYOUTS, render_world
    from clap.data_gen.world.render import DEFAULT_IMAGE_SIZE, WorldSpec

    from clap.errors import ClapError

    overrides = {"classes": args.classes, "image_types": args.image_types}
    if args.open_set:
        from clap.prompts.classes import world_open_set

        if args.classes:
            raise ClapError("--open-set chooses the classes itself; drop --classes")
        overrides["classes"] = world_open_set()
    scenes = args.layout == "scenes" or args.scenes is not None or args.no_ood
    try:  # a scene's size is its own (`_scenes`), not its objects' image size
        spec = WorldSpec(**{k: tuple(v) for k, v in overrides.items() if v},
                         image_size=DEFAULT_IMAGE_SIZE if scenes else args.image_size or DEFAULT_IMAGE_SIZE)
    except ValueError as e:
        raise ClapError(str(e)) from None
    if scenes:
        return _scenes(args, spec)
    layouts = LAYOUTS if args.layout == "all" else (args.layout,)
    for layout in layouts:
        out = Path(args.out) / layout if args.layout == "all" else Path(args.out)
        manifest = render_world(out, layout, args.images_per_class, args.seed, spec, progress=not args.no_progress)
        print(f"{layout}: {manifest}")
    return 0


def _scenes(args: argparse.Namespace, spec) -> int:
    from clap.data_gen.world.scenes import SCENE_SIZE, render_scenes
    from clap.errors import ClapError

    if args.layout != "scenes" or args.scenes is None:
        raise ClapError("--scenes and --no-ood go with --layout scenes, which needs --scenes N")
    manifest = render_scenes(args.out, args.scenes, args.seed, ood=not args.no_ood, spec=spec,
                             size=args.image_size or SCENE_SIZE, progress=not args.no_progress)
    print(f"scenes: {manifest}")
    return 0
