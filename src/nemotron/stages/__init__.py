"""Stage entry points as they run inside a job, and the catalog the CLI builds commands from."""
