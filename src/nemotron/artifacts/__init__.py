"""Typed, versioned artifacts with lineage, and the registries that store them."""

from nemotron.artifacts.errors import ArtifactError
from nemotron.artifacts.file_registry import FileRegistry, default_registry_root
from nemotron.artifacts.types import Artifact, ArtifactKind, ArtifactRef, Lineage

__all__ = [
    "Artifact",
    "ArtifactError",
    "ArtifactKind",
    "ArtifactRef",
    "FileRegistry",
    "Lineage",
    "default_registry_root",
]
