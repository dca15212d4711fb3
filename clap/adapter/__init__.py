"""The disentangler adapter, its config and its files."""
