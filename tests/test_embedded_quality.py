"""The shipped tiny CLIP shows the problem CLAP addresses, on freshly rendered images of an unseen seed.

The world's targets (`clap.data_gen.world.quality.TARGETS`: zero-shot off the ceiling and spread
over image types, prompt sensitivity, style decodable and nameable) are asserted on a smaller render
than the README's report, so this runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from clap.data_gen.world.quality import TARGETS, world_report
from clap.evaluation.protocols.zeroshot import range_null
from clap.data_gen.world.render import WorldSpec
from clap.model import CLAPModel

SEED = 7_000_003  # never used in training (which draws from a seeded stream) nor in its monitoring


@pytest.fixture(scope="module")
def report(embedded):
    return world_report(CLAPModel(embedded), WorldSpec(), SEED, per_type=100, n_train=1200, n_test=600)


@pytest.mark.parametrize("target", list(TARGETS))
def test_the_raw_tiny_clip_meets_the_world_target(report, target):
    assert TARGETS[target](report), {k: report[k] for k in ("type_spread_PC", "probes")} | {
        "mean": report["zero_shot"]["mean"], "text": report["style_text_recognition"]}


def test_range_null_is_zero_when_the_forms_agree_on_every_image():
    column = np.random.default_rng(0).random(300) < 0.7
    assert range_null(np.stack([column] * 3, axis=1).astype(float)) == 0.0


def test_range_null_matches_the_range_of_interchangeable_forms():
    rng = np.random.default_rng(1)
    ranges = [np.ptp((rng.random((200, 3)) < 0.6).mean(axis=0)) for _ in range(2000)]
    hits = (rng.random((200, 3)) < 0.6).astype(float)
    assert range_null(hits) == pytest.approx(np.mean(ranges), abs=0.01)


def test_range_null_stays_small_under_a_real_prompt_effect():
    hits = np.zeros((300, 3))
    hits[:, 0] = 1.0  # the first form is right on every image, the others never
    assert range_null(hits) < 0.1 < np.ptp(hits.mean(axis=0))


def test_the_report_carries_the_noise_floor_of_r(report):
    rows = report["zero_shot"]
    assert all(0 < row["R_null"] < 0.1 for row in rows.values())


def test_content_is_learned(report):
    assert report["probes"]["class_name"] >= 0.5 and report["zero_shot"]["mean"]["C"] > 5 / 32


def test_embedded_load_is_offline_and_identified(embedded, monkeypatch):
    from clap.backbones.loading import EMBEDDED_NAME, load_backbone

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = load_backbone()
    assert again.identity == embedded.identity and again.identity.model == EMBEDDED_NAME
    assert embedded.embed_dim == 128 and embedded.image_size == 64
