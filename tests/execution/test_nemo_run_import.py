"""NeMo-Run's Slurm parts load alone (no other executor, CLI, torch or networkx), give the script a full import
gives, and leave a later full `import nemo_run` working. Each case runs in a fresh interpreter."""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
import textwrap
from pathlib import Path


def run_python(code: str, home: Path, **env: str) -> str:
    """Run `code` in a fresh interpreter with its own NEMOTRON_HOME; returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=home,
        stdin=subprocess.DEVNULL,
        env={"NEMOTRON_HOME": str(home), "PATH": "/usr/bin:/bin", **env},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_slurm_parts_load_without_the_rest_of_nemo_run(tmp_path):
    out = run_python(
        """
        import json, sys
        from nemotron.execution.nemo_run_import import import_nemo_run
        run = import_nemo_run()
        loaded = {name: name in sys.modules for name in ("torch", "leptonai", "networkx.classes", "nemo_run.cli")}
        loaded["lepton executor"] = hasattr(sys.modules["nemo_run.core.execution.lepton"], "__file__")
        classes = {name: f"{cls.__module__}.{cls.__qualname__}" for name, cls in vars(run).items()}
        import torch  # kept out while NeMo-Run loaded, importable afterwards
        print(json.dumps({"loaded": loaded, "classes": classes, "torch": torch.__version__}))
    """,
        tmp_path,
    )
    result = json.loads(out)
    assert result["loaded"] == {
        "torch": False,
        "leptonai": False,
        "networkx.classes": False,
        "nemo_run.cli": False,
        "lepton executor": False,
    }
    assert result["classes"] == {
        "Experiment": "nemo_run.run.experiment.Experiment",
        "SlurmExecutor": "nemo_run.core.execution.slurm.SlurmExecutor",
        "SlurmJobDetails": "nemo_run.core.execution.slurm.SlurmJobDetails",
        "Script": "nemo_run.config.Script",
        "Packager": "nemo_run.core.packaging.base.Packager",
        "LocalTunnel": "nemo_run.core.tunnel.client.LocalTunnel",
        "SSHTunnel": "nemo_run.core.tunnel.client.SSHTunnel",
    }
    assert result["torch"]


def test_a_full_import_afterwards_completes_nemo_run(tmp_path):
    out = run_python(
        """
        import json
        from nemotron.execution.nemo_run_import import import_nemo_run
        parts = import_nemo_run()
        import nemo_run, networkx
        from nemo_run.run import experiment
        try:
            nemo_run.LeptonExecutor()
            refused = ""
        except RuntimeError as err:
            refused = str(err)
        print(json.dumps({
            "same_classes": nemo_run.Experiment is parts.Experiment and nemo_run.SlurmExecutor is parts.SlurmExecutor,
            "cli": callable(nemo_run.cli.main), "version": nemo_run.__version__,
            "docker": nemo_run.DockerExecutor.__module__,
            "graph": experiment.nx.DiGraph is networkx.DiGraph, "refused": refused,
        }))
    """,
        tmp_path,
    )
    result = json.loads(out)
    assert result["same_classes"] and result["cli"] and result["graph"]
    assert result["version"].startswith("0.11.1")  # the version these placeholders and deferrals were checked against
    assert result["docker"] == "nemo_run.core.execution.docker"
    assert "LeptonExecutor is not loaded in nemotron" in result["refused"]


def test_experiment_module_imports_networkx_on_first_use(tmp_path):
    out = run_python(
        """
        import sys
        from nemotron.execution.nemo_run_import import import_nemo_run
        import_nemo_run()
        from nemo_run.run import experiment
        graph = experiment.nx.DiGraph([("a", "b")])  # what Experiment.run does with dependencies
        print(list(experiment.nx.topological_sort(graph)), sys.modules["networkx"] is experiment.nx)
    """,
        tmp_path,
    )
    assert out.split() == ["['a',", "'b']", "True"]


# Renders the sbatch scripts of a sharded (2 scripts) and a distributed data-prep job; "full" imports
# NeMo-Run the usual way first. The last line says whether torch was loaded.
RENDER = """
    import dataclasses, io, re, sys
    sys.stdin = io.StringIO("")  # NeMo-Run's local tunnel copies stdin
    if sys.argv[1] == "full":
        import nemo_run
        nemo_run.Experiment  # the whole package, as `import nemo_run` gives it
    from nemotron.execution.launcher import LaunchRequest, prepare
    from nemotron.execution.slurm_backend import render_sbatch_preview
    from nemotron.stages.catalog import NANO3_DATA_PREP_PRETRAIN
    for stage, overrides in ((NANO3_DATA_PREP_PRETRAIN, ("array_tasks=2",)),
                             (dataclasses.replace(NANO3_DATA_PREP_PRETRAIN, single_task=False), ("array_tasks=0",))):
        p = prepare(LaunchRequest(stage, "tiny", overrides, "gpu", ()))
        for task, script in render_sbatch_preview(p.profile, p.job):
            script = re.sub(re.escape(p.job.name) + r"_[0-9]+", "<JOB>_<EXPERIMENT>", script)
            print(f"=== {task}\\n" + script.replace(p.job.name, "<JOB>"))
    print("torch loaded:", "torch" in sys.modules)
"""
GPU_PROFILE = """
[gpu]
executor = "slurm"
account = "acct"
nodes = 2
ntasks_per_node = 8
gpus_per_node = 8
container_image = "/images/nemotron.sqsh"
"""


def test_sbatch_scripts_equal_those_of_a_full_nemo_run_import(tmp_path):
    (tmp_path / "env.toml").write_text(GPU_PROFILE)
    rendered = {}
    for mode in ("lean", "full"):
        home = tmp_path / mode
        home.mkdir()
        code = f"import sys; sys.argv[1:] = [{mode!r}]\n" + textwrap.dedent(RENDER)
        out = run_python(code, home, NEMOTRON_ENV_FILE=str(tmp_path / "env.toml"), NEMORUN_HOME=str(home / "nemo_run"))
        scripts, _, torch_line = out.rstrip().rpartition("\n")
        rendered[mode] = (scripts.replace(str(home), "<HOME>"), torch_line)
    (lean, lean_torch), (full, full_torch) = rendered["lean"], rendered["full"]
    assert (lean_torch, full_torch) == ("torch loaded: False", "torch loaded: True")
    assert lean.count("=== ") == 3 and "--array=0-1" in lean and "torch.distributed.run" in lean
    diff = "".join(difflib.unified_diff(full.splitlines(True), lean.splitlines(True), "full import", "nemotron's"))
    assert not diff, "the scripts differ:\n" + diff
