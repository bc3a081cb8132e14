"""`python -m nemotron` runs the CLI."""

from nemotron.cli.app import main

main()
