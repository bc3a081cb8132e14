"""Typed, versioned artifacts with lineage, and the registries that store them."""

from nemotron.artifacts.errors import ArtifactError, ArtifactNotFoundError
from nemotron.artifacts.file_registry import FileRegistry, default_registry_root
from nemotron.artifacts.kinds import (
    ArtifactKind,
    EvalMeta,
    ModelCheckpointMeta,
    PretrainDataMeta,
    RecordCounts,
    RLDataMeta,
    SftDataMeta,
    TokenCounts,
    TokenizerInfo,
    parse_metadata,
)
from nemotron.artifacts.manifest import HASH_LIMIT_BYTES, Manifest, ManifestEntry, VerifyReport
from nemotron.artifacts.mirrors import Mirror, mirror_artifact, mirrors_from_environment, publish_with_mirrors
from nemotron.artifacts.resolution import PinnedRegistry, ResolvedRef, resolve_references
from nemotron.artifacts.types import Artifact, ArtifactRef, Lineage, fingerprint_alias

__all__ = [
    "HASH_LIMIT_BYTES",
    "Artifact",
    "ArtifactError",
    "ArtifactKind",
    "ArtifactNotFoundError",
    "ArtifactRef",
    "EvalMeta",
    "FileRegistry",
    "Lineage",
    "Manifest",
    "ManifestEntry",
    "Mirror",
    "ModelCheckpointMeta",
    "PinnedRegistry",
    "PretrainDataMeta",
    "RLDataMeta",
    "RecordCounts",
    "ResolvedRef",
    "SftDataMeta",
    "TokenCounts",
    "TokenizerInfo",
    "VerifyReport",
    "default_registry_root",
    "fingerprint_alias",
    "mirror_artifact",
    "mirrors_from_environment",
    "parse_metadata",
    "publish_with_mirrors",
    "resolve_references",
]
