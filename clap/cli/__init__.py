"""The `clap` command line."""
