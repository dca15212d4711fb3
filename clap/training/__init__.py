"""Training the disentangler: losses, frozen-feature data modules, Lightning modules, the `clap train` CLI."""
