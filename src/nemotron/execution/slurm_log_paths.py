"""NeMo-Run's SlurmJobDetails with the srun log paths quoted (imported once NeMo-Run is loaded).

NeMo-Run writes `srun --output <srun_stdout>` into the sbatch script without quotes, to let the job's shell
expand `${SLURM_RESTART_COUNT:-0}` (one log per (re)start of the job); a folder with a space would split
the line. Here the path is quoted, all but that variable. A module of its own: NeMo-Run serializes the
executor (Fiddle), which must import this class by name.
"""

from __future__ import annotations

import posixpath
import shlex

from nemotron.execution.nemo_run_import import import_nemo_run

RESTART_COUNT = "${SLURM_RESTART_COUNT:-0}"  # expanded by the job's shell: never quoted


def quoted_log_path(folder: str, job_name: str, suffix: str) -> str:
    """`<folder>/log-<job>_%j_${SLURM_RESTART_COUNT:-0}<suffix>` as shell text, the literal parts quoted."""
    literal = posixpath.join(folder, f"log-{job_name}_%j_")
    return f"{shlex.quote(literal)}{RESTART_COUNT}{shlex.quote(suffix)}"


class QuotedSlurmJobDetails(import_nemo_run().SlurmJobDetails):  # type: ignore[misc]
    @property
    def srun_stdout(self) -> str:
        assert self.folder, self.job_name
        return quoted_log_path(self.folder, self.job_name, ".out")

    @property
    def srun_stderr(self) -> str:  # written only when stderr_to_stdout is off
        assert self.folder, self.job_name
        return quoted_log_path(self.folder, self.job_name, ".err")
