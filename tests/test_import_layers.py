"""Imports in src/nemotron run down the layer map of docs/architecture.md; no package imports itself in a cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DOC = ROOT / "docs" / "architecture.md"

# The layer map, low to high: a module may import its own layer and the layers below it, never one above.
# A layer names top-level modules (base) or packages of nemotron; docs/architecture.md draws the same map.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "__init__",
        "errors",
        "ranges",
        "suggest",
        "paths",
        "atomic_write",
        "checksums",
        "quiet",
        "processes",
        "lease",
        "storage_errors",
        "counts",
        "interrupts",
    ),
    ("env",),
    ("data",),
    ("artifacts",),
    ("config",),
    ("training",),
    ("stages", "pipeline", "runs"),
    ("execution",),
    ("cli", "__main__"),
)

# Inside nemotron.training, low to high (`__init__` is the package module itself).
TRAINING_LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "errors", "cpu_compat"),
    ("model",),
    ("distributed",),
    ("optim",),
    ("checkpoint",),
    ("datasets",),
    ("engine",),
    ("loop",),
    ("export", "inference"),
    ("run",),
    ("pretrain", "sft", "rl", "evaluation"),
)

# Narrower than the layers. A stage's own training code is imported only by that stage's entry point
# and the stage catalog; stage entry points are started by module name, never imported from outside
# stages/, whose face to the layers above is the catalog.
ONLY_FROM: dict[str, tuple[str, ...]] = {
    "nemotron.training.pretrain": ("nemotron.stages.pretrain", "nemotron.stages.catalog"),
    "nemotron.training.sft": ("nemotron.stages.sft", "nemotron.stages.catalog"),
    "nemotron.training.rl": ("nemotron.stages.rl", "nemotron.stages.catalog"),
    "nemotron.training.evaluation": ("nemotron.stages.evaluation", "nemotron.stages.catalog"),
}
ONLY_THROUGH: dict[str, tuple[str, ...]] = {
    "nemotron.stages": ("nemotron.stages.catalog",),
}


@dataclass(frozen=True)
class Import:
    """One import statement's target, where it is written."""

    module: str  # the importing module, e.g. nemotron.config.recipes
    path: Path
    line: int
    target: str  # the imported nemotron module, e.g. nemotron.artifacts.resolution

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} ({self.module}) imports {self.target}"


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((SRC / "nemotron").rglob("*.py"))}


def _targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: resolve against the importing module's package
            package = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
            base = ".".join(package + ([base] if base else []))
        for alias in node.names:  # `from pkg import submodule` imports the submodule
            yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base


def _all_imports() -> list[Import]:
    """Every import of a nemotron module: module level, in functions, under TYPE_CHECKING alike."""
    sources = _sources()
    known = set(sources)
    found: set[Import] = set()
    for module, path in sources.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _targets(node, module, is_package, known):
                if _within(target, "nemotron"):
                    found.add(Import(module, path, node.lineno, target))
    return sorted(found, key=lambda i: (str(i.path), i.line, i.target))


def _part(module: str, package: str) -> str:
    """The part of `package` that `module` belongs to: its first name below it, or `__init__` for itself."""
    rest = module[len(package) + 1 :] if module != package else "__init__"
    return rest.split(".")[0]


def _rank(layers: tuple[tuple[str, ...], ...]) -> dict[str, int]:
    return {name: index for index, layer in enumerate(layers) for name in layer}


def _layer_violations(imports: list[Import], package: str, layers: tuple[tuple[str, ...], ...]) -> list[str]:
    rank = _rank(layers)
    problems = []
    for imp in imports:
        if not (_within(imp.module, package) and _within(imp.target, package)):
            continue
        src, dst = _part(imp.module, package), _part(imp.target, package)
        if rank[dst] > rank[src]:
            problems.append(f"{imp.where()}: '{dst}' is above '{src}' in the layer map")
    return problems


def _unmapped(package: str, layers: tuple[tuple[str, ...], ...]) -> list[str]:
    rank = _rank(layers)
    parts = {_part(m, package) for m in _sources() if _within(m, package)}
    return sorted(p for p in parts if p not in rank)


def test_every_module_has_a_layer():
    assert _unmapped("nemotron", LAYERS) == [], "add these modules/packages to LAYERS (and docs/architecture.md)"
    assert _unmapped("nemotron.training", TRAINING_LAYERS) == [], "add these to TRAINING_LAYERS"


def test_no_import_runs_up_the_layer_map():
    problems = _layer_violations(_all_imports(), "nemotron", LAYERS)
    assert not problems, "imports against the layer map in docs/architecture.md:\n" + "\n".join(problems)


def test_no_import_runs_up_the_training_layers():
    problems = _layer_violations(_all_imports(), "nemotron.training", TRAINING_LAYERS)
    assert not problems, "imports against the training layers in docs/architecture.md:\n" + "\n".join(problems)


def test_narrower_rules_hold():
    problems = []
    for imp in _all_imports():
        for private, importers in ONLY_FROM.items():
            if _within(imp.target, private) and not _within(imp.module, private) and imp.module not in importers:
                problems.append(f"{imp.where()}: only {', '.join(importers)} may import {private}")
        for package, faces in ONLY_THROUGH.items():
            if _within(imp.target, package) and not _within(imp.module, package) and imp.target not in faces:
                problems.append(f"{imp.where()}: outside {package}, import only {', '.join(faces)}")
    assert not problems, "\n".join(problems)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_between_modules_of_a_package():
    edges: dict[str, set[str]] = {}
    for imp in _all_imports():
        same_package = imp.module.split(".")[:2] == imp.target.split(".")[:2]
        if same_package and imp.target != imp.module:
            edges.setdefault(imp.module, set()).add(imp.target)
    cycles = _cycles(edges)
    assert not cycles, "modules that import each other (directly or around a loop):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def render_map(layers: tuple[tuple[str, ...], ...]) -> str:
    """The map as docs/architecture.md draws it: one line per layer, highest first."""
    return "\n".join(f"    {n + 1:>2}  {', '.join(layer)}" for n, layer in reversed(list(enumerate(layers))))


def test_architecture_doc_draws_the_same_map():
    doc = DOC.read_text(encoding="utf-8")
    for layers in (LAYERS, TRAINING_LAYERS):
        assert render_map(layers) in doc, f"{DOC.relative_to(ROOT)} must draw this map:\n{render_map(layers)}"
    for rules in (ONLY_FROM, ONLY_THROUGH):
        for key, names in rules.items():
            assert all(f"`{name}`" in doc for name in (key, *names)), f"{DOC.name} must state the rule on {key}"
