"""Import NeMo-Run lazily, with its home under nemotron's (NEMORUN_HOME is read at import time)."""

from __future__ import annotations

import os
import sys
from types import ModuleType

from nemotron.paths import nemotron_home


def import_nemo_run() -> ModuleType:
    """Import nemo_run without torch when torch is not loaded yet.

    NeMo-Run imports torch only to teach its YAML serializer about `torch.dtype`, which the
    launcher never serializes; that import is half of NeMo-Run's import time on a CPU machine
    (benchmarks/cli_latency.py). NeMo-Run catches the ModuleNotFoundError, and torch stays
    importable afterwards.
    """
    os.environ.setdefault("NEMORUN_HOME", str(nemotron_home() / "nemo_run"))
    if "nemo_run" in sys.modules or "torch" in sys.modules:
        import nemo_run

        return nemo_run
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` fail fast
    try:
        import nemo_run
    finally:
        del sys.modules["torch"]
    return nemo_run
