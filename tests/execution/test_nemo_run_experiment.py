"""What nemotron reads of a NeMo-Run experiment (its id and folder, from public executor fields), checked on a
real NeMo-Run dry run: fails when NeMo-Run stops setting them the way the Slurm backend relies on."""

from __future__ import annotations

import contextlib
import io

from nemotron.execution.launcher import LaunchRequest, prepare
from nemotron.execution.nemo_run_import import import_nemo_run
from nemotron.execution.slurm_backend import add_tasks, experiment_location
from nemotron.execution.slurm_executor import build_slurm_plan
from nemotron.stages.catalog import NANO3_DATA_PREP_PRETRAIN


def test_experiment_id_and_folder_are_those_nemo_run_saves_and_finds(nemotron_home, tmp_path):
    (tmp_path / "env.toml").write_text('[cpu]\nexecutor = "slurm"\naccount = "acct"\n')
    prepared = prepare(LaunchRequest(NANO3_DATA_PREP_PRETRAIN, "tiny", ("array_tasks=2",), "cpu", ()))
    plan = build_slurm_plan(prepared.profile, prepared.job)
    run = import_nemo_run()
    with contextlib.redirect_stdout(io.StringIO()):
        with run.Experiment(prepared.job.name, executor=plan.tasks[0].executor, log_level="ERROR") as experiment:
            add_tasks(experiment, plan)
            experiment_id, folder = experiment_location(experiment)
            experiment.dryrun(log=False, delete_exp_dir=False)
        reloaded = run.Experiment.from_id(experiment_id)  # NeMo-Run's public way back to a submitted experiment

    assert experiment_id.startswith(f"{prepared.job.name}_")
    assert folder.name == experiment_id and folder.parent.name == prepared.job.name
    assert sorted(p.name for p in folder.glob("*_sbatch.sh")) == ["finalize_sbatch.sh", "shards_sbatch.sh"]
    assert [job.executor.experiment_id for job in experiment.jobs] == [experiment_id] * 2  # every task's executor
    assert [job.executor.experiment_id for job in reloaded.jobs] == [experiment_id] * 2  # the id the record keeps
