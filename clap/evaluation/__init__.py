"""Evaluation, in five layers; a module imports only from its own layer and the layers above it in this list
(`tests/test_layering.py`):

- `statistics`: what a bootstrap resample draws and the intervals of differences (`resample`, `stats`).
- `inputs`: the setup every protocol shares: the dataset's features (`features`), the backbone and the models
  (`setup`).
- `protocols`: one module per protocol with its `run_*` entry (zero-shot, few-shot, adversarial, OOD, openness,
  anomaly, ...).
- `output`: reports, plots, claims and merged tables.
- `pipeline`: the task table and `EvalOptions` (`tasks`), the open-world inputs (`openworld`), the scene task's
  setup (`scene_setup`) and `clap.evaluate` with its `Report` (`evaluate`).
"""
