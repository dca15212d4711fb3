"""Defaults that more than one module (or the command line) needs, written once; no heavy imports."""

NOISE_FORMS = ("shared", "per-class")  # ZS(NC): one context for all classes per draw (the authors'), or per class
NOISE_DRAWS = 32  # ZS(NC) is averaged over this many seeded noise draws, the same for every model
NOISE_TOKENS, NOISE_STD = 4, 0.02  # ZS(NC)'s noise: token embeddings N(0, std^2) after the start token
N_BOOT = 2000  # bootstrap resamples of every interval
