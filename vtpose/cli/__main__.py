"""`python -m vtpose.cli`: the same as the `vtpose` command."""

from vtpose.cli.main import main

main()
