"""The `nemotron` command line (Typer + Rich): stage commands and job control."""
