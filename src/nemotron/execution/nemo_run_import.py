"""Import NeMo-Run lazily, with its home under nemotron's (NEMORUN_HOME is read at import time)."""

from __future__ import annotations

import os
from types import ModuleType

from nemotron.paths import nemotron_home


def import_nemo_run() -> ModuleType:
    os.environ.setdefault("NEMORUN_HOME", str(nemotron_home() / "nemo_run"))
    import nemo_run

    return nemo_run
