"""`python -m shukei` is the `shukei` command."""

from shukei.cli import main

main()
