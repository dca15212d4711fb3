"""The rendered content/style world: content = object class, style = the four template attributes."""
