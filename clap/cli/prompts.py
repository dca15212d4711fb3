"""`clap prompts`: the method's attribute-templated prompts for a class list."""

from __future__ import annotations

import argparse

from clap.options import NAME, PATH


def add_parser(sub) -> None:
    p = sub.add_parser("prompts", help="write the attribute-templated training prompts of a class list",
                       description=__doc__.splitlines()[0])
    add_class_arguments(p)
    p.add_argument("--out", required=True, type=PATH, help="output folder: <class>.txt files and prompts.jsonl")
    p.add_argument("--vocab", default=None, type=PATH,
                   help="folder with colours.txt, sizes.txt, image_types.txt, art_styles.txt (default: the method's)")
    p.set_defaults(run=run)


def add_class_arguments(parser: argparse.ArgumentParser) -> None:
    """--classes SOURCE (preset, file or dataset folder) or --names N1 N2 ..."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--classes", type=PATH, help="a preset (pacs, vlcs, officehome, domainnet), a class-list file "
                                         "(one name per line) or a dataset folder (root/domain/class/image)")
    group.add_argument("--names", nargs="+", type=NAME, help="class names given directly")


def class_source(args: argparse.Namespace):
    return args.classes if args.classes is not None else args.names


def run(args: argparse.Namespace) -> int:
    from clap.prompts.classes import load_classes
    from clap.prompts.export import write_prompts
    from clap.prompts.templates import AttributeVocab

    classes = load_classes(class_source(args))
    vocab = AttributeVocab.from_folder(args.vocab) if args.vocab else AttributeVocab.default()
    manifest = write_prompts(classes, args.out, vocab)
    print(f"wrote {len(classes) * len(vocab)} prompts for {len(classes)} classes to {manifest.parent}")
    return 0
