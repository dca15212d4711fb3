"""Datasets read from disk."""
