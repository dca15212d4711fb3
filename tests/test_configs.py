"""The ready-made training configs parse, and carry the method's per-dataset settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clap.cli.main import main

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "experiments" / "configs").glob("*.yaml"))
METHOD = {  # latent, batch, tau, lambda, IGN length (docs/method.md, ViT-B/16)
    "pacs": (256, 8, 0.5, 1.0, 4), "vlcs": (512, 8, 0.5, 1.0, 4),
    "officehome": (448, 96, 0.3, 0.0001, 0), "domainnet": (512, 384, 0.3, 0.0001, 0),
}


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_config_parses(config, capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--config", str(config), "--print_config"])
    assert done.value.code == 0
    assert "class_path: clap.training" in capsys.readouterr().out


@pytest.mark.parametrize("dataset", sorted(METHOD))
def test_paper_settings(dataset):
    cfg = yaml.safe_load((CONFIGS[0].parent / f"{dataset}_clap.yaml").read_text())
    model, data = cfg["model"]["init_args"], cfg["data"]["init_args"]
    got = (model["latent_dim"], data["batch_size"], model["tau"], model["lam"], data["ign_tokens"])
    assert got == METHOD[dataset]
    assert "out_dim" not in model  # the output keeps the backbone's feature size (ViT-L/14: 768)
    assert model["tau_c"] == 1.0 and model["lr"] == 0.0001 and cfg["trainer"]["max_steps"] == 8000
    assert (data["osd"], data["ocd"], data["spo"], data["itd"], data["asd"]) == (0.5, 0.5, 0.5, 0.0, 0.0)
