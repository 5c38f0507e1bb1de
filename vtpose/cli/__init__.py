"""The one `vtpose` command (`vtpose.cli.main:main`), its subcommands grouped by area."""
