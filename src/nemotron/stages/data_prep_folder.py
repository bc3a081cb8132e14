"""A data prep job's data folder: made, held by one writer (a lease), its refused writes named by their setting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def writing_data_folder(data_dir: Path, output_dir: str | None, what: str) -> Iterator[None]:
    """Make `data_dir` and hold its lease while the block runs (the tasks of a Slurm array share it, the
    finalize job takes it over); a folder that refuses writes (read-only, full) is reported as one line naming
    `what` is written and the setting that moves the folder."""
    from nemotron.data.errors import DataFolderBusy
    from nemotron.lease import take_lease
    from nemotron.storage_errors import storage_errors

    setting = "output_dir" if output_dir else "NEMOTRON_ARTIFACTS_ROOT (or output_dir)"
    with storage_errors(what, data_dir, setting):
        data_dir.mkdir(parents=True, exist_ok=True)
        with take_lease(data_dir, what="data prep output folder", error=DataFolderBusy):
            yield
