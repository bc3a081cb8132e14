"""NeMo-Run is imported without torch by the launcher, and torch stays importable afterwards."""

import subprocess
import sys


def test_import_nemo_run_skips_torch_and_leaves_it_importable(tmp_path):
    code = (
        "import sys\n"
        "from nemotron.execution.nemo_run_import import import_nemo_run\n"
        "run = import_nemo_run()\n"
        "assert hasattr(run, 'SlurmExecutor'), 'nemo_run not usable'\n"
        "print('torch-loaded' if 'torch' in sys.modules else 'torch-not-loaded')\n"
        "import torch\n"
        "print('torch', torch.__version__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"NEMOTRON_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[0] == "torch-not-loaded"
    assert lines[1].startswith("torch ")
