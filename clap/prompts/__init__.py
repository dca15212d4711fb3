"""Attribute vocabularies, templated prompts and prompt augmenters."""
