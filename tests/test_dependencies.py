"""Declared dependencies are the ones imported: pyproject.toml against the imports under src/nemotron.

Every third-party top-level import in src/nemotron (lazy imports inside functions included) must come
from a distribution declared in [project].dependencies or an optional extra other than `test`; every
entry of [project].dependencies must be imported somewhere, unless it is listed in NOT_IMPORTED with
its reason, and pyproject.toml says that reason in a comment above the entry.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "nemotron"
PYPROJECT = ROOT / "pyproject.toml"

# Declared runtime dependencies that nemotron needs without importing them by name.
NOT_IMPORTED = {
    "psutil": "megatron-core's dist_checkpointing writer needs it at run time but does not declare it",
    "leptonai": "only a version pin for NeMo-Run's own dependency",
    "tensorboard": "imported through torch.utils.tensorboard",
}

# Extras that are development tools, not optional runtime features.
DEV_EXTRAS = {"test"}


def _normalize(name: str) -> str:
    """PEP 503 name normalisation: `Hydra_Core` and `hydra.core` both become `hydra-core`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_name(requirement: str) -> str:
    return _normalize(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip()).group(0))


def _project() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]


def _runtime_dependencies() -> set[str]:
    return {_dist_name(req) for req in _project()["dependencies"]}


def _declared() -> set[str]:
    """Every distribution that an installed nemotron may import: dependencies and non-dev extras."""
    extras = _project().get("optional-dependencies", {})
    optional = {_dist_name(req) for name, reqs in extras.items() if name not in DEV_EXTRAS for req in reqs}
    return _runtime_dependencies() | optional


def _third_party_imports() -> dict[str, list[str]]:
    """Top-level module name -> the places (file:line) under src/nemotron that import it."""
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("__future__", "nemotron"):
                    continue
                found.setdefault(top, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _import_to_dists() -> dict[str, set[str]]:
    return {module: {_normalize(d) for d in dists} for module, dists in packages_distributions().items()}


def test_the_scan_finds_imports():
    imports = _third_party_imports()
    assert {"torch", "megatron", "omegaconf", "typer"} <= imports.keys()
    assert "wandb" in imports  # a lazy import inside a function


def test_every_third_party_import_is_declared():
    declared = _declared()
    mapping = _import_to_dists()
    problems = []
    for module, places in sorted(_third_party_imports().items()):
        dists = mapping.get(module)
        if not dists:
            problems.append(f"{module} (imported at {places[0]}) is not installed: declare its distribution")
        elif not dists & declared:
            problems.append(
                f"{module} (imported at {places[0]}) comes from {', '.join(sorted(dists))}, which "
                f"pyproject.toml does not declare: add it to [project].dependencies or remove the import"
            )
    assert not problems, "\n".join(problems)


def test_every_declared_dependency_is_imported_or_says_why_not():
    imported = set(_third_party_imports())
    provides: dict[str, set[str]] = {}
    for module, dists in _import_to_dists().items():
        for dist in dists:
            provides.setdefault(dist, set()).add(module)
    unused = sorted(
        dist
        for dist in _runtime_dependencies()
        if not provides.get(dist, set()) & imported and _normalize(dist) not in NOT_IMPORTED
    )
    assert not unused, (
        f"declared in [project].dependencies but never imported under src/nemotron: {', '.join(unused)}. "
        "Remove them, or add them to NOT_IMPORTED in this test and say why in a comment in pyproject.toml."
    )


def test_dependencies_that_are_not_imported_say_why_in_pyproject():
    lines = PYPROJECT.read_text(encoding="utf-8").splitlines()
    runtime = _runtime_dependencies()
    problems = []
    for dist in sorted(NOT_IMPORTED):
        if dist not in runtime:
            problems.append(f"{dist} is in NOT_IMPORTED but not in [project].dependencies: drop it from the list")
            continue
        index = next(i for i, line in enumerate(lines) if re.match(r'\s*"' + re.escape(dist) + r"\b", line, re.I))
        if not lines[index - 1].strip().startswith("#"):
            problems.append(f"pyproject.toml: put a comment above {lines[index].strip()} saying why it is declared")
    assert not problems, "\n".join(problems)
