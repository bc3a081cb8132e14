"""Following lineage: which inputs of an artifact are artifacts themselves, as a tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nemotron.artifacts.errors import ArtifactError
from nemotron.artifacts.types import Artifact, ArtifactRef, Lineage

if TYPE_CHECKING:
    from nemotron.artifacts.file_registry import FileRegistry


@dataclass(frozen=True)
class LineageNode:
    """An artifact (with its inputs below it) or a plain input such as a source path or tokenizer."""

    label: str
    artifact: Artifact | None = None
    children: tuple[LineageNode, ...] = ()
    note: str | None = None  # "missing from the registry", "cycle", "depth limit"


def input_artifact(registry: FileRegistry, text: str) -> Artifact | None:
    """The artifact an input names, or None when the input is not a ref of an artifact in `registry`.

    An input counts as an artifact reference when it has ':' and parses (`name:v3`) and `name`
    exists in the registry; so `tokenizer:gpt2` is a plain input unless an artifact `tokenizer` exists.
    """
    ref = ArtifactRef.from_text(text)
    if ref is None or ref.name not in registry.names():
        return None
    return registry.resolve(ref)


def artifact_inputs(registry: FileRegistry, lineage: Lineage) -> list[tuple[str, Artifact | None]]:
    """Each input of `lineage` with the artifact it names (None for plain inputs)."""
    result: list[tuple[str, Artifact | None]] = []
    for text in lineage.inputs:
        try:
            result.append((text, input_artifact(registry, text)))
        except ArtifactError:  # the name exists but that version or alias does not (any more)
            result.append((text, None))
    return result


def lineage_tree(registry: FileRegistry, ref: str | ArtifactRef, max_depth: int = 32) -> LineageNode:
    """`ref` and, recursively, its inputs that are artifacts of `registry`."""
    return _node(registry, registry.resolve(ref), set(), max_depth)


def _node(registry: FileRegistry, artifact: Artifact, ancestors: set[str], depth: int) -> LineageNode:
    if artifact.ref in ancestors:
        return LineageNode(artifact.ref, artifact, note="cycle")
    if depth <= 0:
        return LineageNode(artifact.ref, artifact, note="depth limit")
    children = []
    for text, found in artifact_inputs(registry, artifact.lineage):
        if found is not None:
            children.append(_node(registry, found, ancestors | {artifact.ref}, depth - 1))
        else:
            ref = ArtifactRef.from_text(text)
            missing = ref is not None and ref.name in registry.names()
            children.append(LineageNode(text, note="missing from the registry" if missing else None))
    return LineageNode(artifact.ref, artifact, tuple(children))
