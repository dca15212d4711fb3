"""Write the attribute prompts of a class list: one text file per class and a JSONL of attributes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

from clap.errors import ClapError
from clap.prompts.templates import AttributeVocab, class_prompts
from clap.fileio import folder_name, write_text_atomic


def write_prompts(classes: Sequence[str], out: str | Path, vocab: AttributeVocab | None = None) -> Path:
    """out/<class>.txt (one prompt per line, fixed order) + out/prompts.jsonl; returns the JSONL path."""
    vocab = vocab or AttributeVocab.default()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ClapError(f"cannot create output folder {out}: {e.strerror}") from None
    rows = []
    for name in classes:
        parts = class_prompts(name, vocab)
        write_text_atomic(out / f"{folder_name(name).replace('/', '_')}.txt", "".join(p.text() + "\n" for p in parts))
        rows.extend({"prompt": p.text(), **dataclasses.asdict(p)} for p in parts)
    manifest = out / "prompts.jsonl"
    write_text_atomic(manifest, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows))
    return manifest
