"""One module per ``jaq`` subcommand (see jaq.cli)."""
