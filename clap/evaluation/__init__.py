"""Evaluation protocols: zero-shot, few-shot probes, adversarial robustness, disentanglement."""
