"""Load the parts of NeMo-Run that nemotron's Slurm path uses, without the rest of NeMo-Run."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from nemotron.paths import nemotron_home

# Packages whose __init__ imports every executor, NeMo-Run's CLI and its devspace: registered without
# running it (submodules import as usual); the first attribute asked of one that no submodule set runs it.
_DEFERRED_PACKAGES = ("nemo_run", "nemo_run.core.execution")
# Imported at the top of NeMo-Run's experiment module, used only when an experiment runs (the task
# graph of Experiment.run): the experiment module gets a stand-in that imports it on first use.
_DEFERRED_IMPORTS = ("networkx",)
# Executors nemotron never uses, imported by NeMo-Run's experiment and packaging code only for
# isinstance checks and lookup tables; leptonai alone takes ~0.8 s to import. They are placeholders.
_UNUSED_EXECUTORS = {
    "nemo_run.core.execution.dgxcloud": "DGXCloudExecutor",
    "nemo_run.core.execution.kubeflow": "KubeflowExecutor",
    "nemo_run.core.execution.lepton": "LeptonExecutor",
    "nemo_run.core.execution.skypilot": "SkypilotExecutor",
    "nemo_run.core.execution.skypilot_jobs": "SkypilotJobsExecutor",
}


@dataclass(frozen=True)
class NemoRun:
    """The NeMo-Run classes nemotron submits and previews Slurm jobs with."""

    Experiment: Any
    SlurmExecutor: Any
    SlurmJobDetails: Any
    Script: Any
    Packager: Any
    LocalTunnel: Any
    SSHTunnel: Any


def import_nemo_run() -> NemoRun:
    """NeMo-Run's Experiment, SlurmExecutor, Script, Packager and tunnels, imported alone.

    A plain `import nemo_run` takes ~2.6 s here: its package imports every executor (leptonai,
    DGX Cloud, Kubeflow, SkyPilot), its CLI (fiddle's, devspace), networkx and torch, which NeMo-Run
    uses only to teach its YAML serializer about `torch.dtype`. Here the package inits are deferred
    (_DEFERRED_PACKAGES), networkx waits for its first use (_DEFERRED_IMPORTS), the unused executors
    are placeholders for the rest of the process (_UNUSED_EXECUTORS) and torch is kept out while
    NeMo-Run loads (it stays importable afterwards). Dry runs and submissions still run NeMo-Run's
    own code, so the sbatch script is the one a full import gives, and a later `import nemo_run`
    completes the package. tests/execution/test_nemo_run_import.py checks this against the pinned
    NeMo-Run; benchmarks/cli_latency.py measures the time.
    """
    os.environ.setdefault("NEMORUN_HOME", str(nemotron_home() / "nemo_run"))  # read at import time
    if "nemo_run.run.experiment" not in sys.modules:
        _load_slurm_parts()
    from nemo_run.config import Script
    from nemo_run.core.execution.slurm import SlurmExecutor, SlurmJobDetails
    from nemo_run.core.packaging.base import Packager
    from nemo_run.core.tunnel.client import LocalTunnel, SSHTunnel
    from nemo_run.run.experiment import Experiment

    return NemoRun(Experiment, SlurmExecutor, SlurmJobDetails, Script, Packager, LocalTunnel, SSHTunnel)


def _load_slurm_parts() -> None:
    keep_torch_out = "torch" not in sys.modules
    if keep_torch_out:
        sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` fails fast; NeMo-Run catches it
    try:
        deferred = [_defer_init(name) for name in _DEFERRED_IMPORTS if name not in sys.modules]
        if "nemo_run" not in sys.modules:  # else NeMo-Run is already imported (whole or in parts)
            package = _defer_init(_DEFERRED_PACKAGES[0])
            # what NeMo-Run's own modules read of the package (Experiment writes it into its folder)
            package.__dict__["__version__"] = importlib.import_module("nemo_run.package_info").__version__
            importlib.import_module("nemo_run.core")
            _defer_init(_DEFERRED_PACKAGES[1])
            for name, class_name in _UNUSED_EXECUTORS.items():
                sys.modules.setdefault(name, _placeholder_module(name, class_name))
        importlib.import_module("nemo_run.run.experiment")
        for module in deferred:  # whoever imports it next gets a plain import (the stand-in then aliases it)
            if sys.modules.get(module.__name__) is module and "__getattr__" in vars(module):
                del sys.modules[module.__name__]
    finally:
        if keep_torch_out:
            del sys.modules["torch"]


def _defer_init(name: str) -> ModuleType:
    """Register module `name` (a package keeps its __path__) without running its code until an attribute
    it lacks is asked for (PEP 562 module __getattr__); then its code runs into the same module object,
    or, if `name` was imported anew meanwhile, the module takes that import's namespace."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def complete_import(attribute: str) -> Any:
        del module.__getattr__
        current = sys.modules.setdefault(name, module)
        if current is module:
            loader.exec_module(module)
        else:
            vars(module).update(vars(current))
        return getattr(module, attribute)

    module.__getattr__ = complete_import  # type: ignore[method-assign]
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def _placeholder_module(name: str, class_name: str) -> ModuleType:
    """A module whose one class stands for a NeMo-Run executor nemotron never creates."""

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{name}.{class_name} is not loaded in nemotron (nemotron.execution.nemo_run_import)")

    module = ModuleType(name, f"Placeholder of NeMo-Run's {class_name} (nemotron runs Slurm and local jobs only).")
    setattr(module, class_name, type(class_name, (), {"__init__": refuse, "__module__": name}))
    return module
