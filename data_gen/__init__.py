"""Producers of training data: the rendered content/style world and Stable Diffusion synthesis."""
