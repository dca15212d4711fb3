"""Stable Diffusion synthesis of attribute-templated class images (the image route's data)."""
