"""Defaults of the synthesis, importable without torch (for the CLI's help)."""

DEFAULT_MODEL = "stabilityai/stable-diffusion-2-1-base"
SCHEDULERS = ("dpm-solver++", "ddim", "euler", "pipeline-default")
