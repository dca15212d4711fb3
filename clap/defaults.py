"""Defaults that more than one module (or the command line) needs, written once; no heavy imports."""

PROTOCOLS = ("pixel", "paper")  # attacks on [0, 1] pixels (default) or the authors' normalised tensors
NOISE_FORMS = ("shared", "per-class")  # ZS(NC): one context for all classes per draw (the authors'), or per class
NOISE_DRAWS = 32  # ZS(NC) is averaged over this many seeded noise draws, the same for every model
NOISE_TOKENS, NOISE_STD = 4, 0.02  # the method's IGN and ZS(NC)'s noise: token embeddings N(0, std^2)
N_BOOT = 2000  # bootstrap resamples of every interval
EPS_SWEEP = (1 / 255, 2 / 255, 4 / 255, 8 / 255)  # attack budgets in pixel units; 8/255 is the paper's
ALPHA_GRID = (0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2, 0.3, 0.5, 0.7, 1.0)  # where select-alpha chooses
ALPHA_SWEEP = (0.0, 0.03, 0.056, 0.1, 0.14, 0.2, 0.3, 0.5, 1.0)  # `clap eval alpha`'s curve (0.056: the paper's)
OPENNESS_ORDERS = 3  # random orders per target vocabulary (the authors' scripts run 3 trials)
REPE_WEIGHT, REPE_K = 0.25, 100  # REPE's mixing weight and captions averaged per class
ADVERSARIAL_CLASSES = 3  # the openness analysis: non-target classes added against each vocabulary (the paper's)
CLIPN_TEMPLATE_SETS = ("authors", "ensemble", "single")  # CLIPN's inference prompts: its authors' 128, the
# max-logit ensemble's 16, or the PC template alone
ADVERSARIAL_RULES = ("greedy", "ranked")  # how the openness analysis picks its adversarial non-target classes
