"""The evaluation protocols, one module each, each with its `run_*(setup, ...)` entry."""
