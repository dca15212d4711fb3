"""Frozen CLIP-like backbones (open_clip first, Hugging Face CLIP second) behind one interface."""
