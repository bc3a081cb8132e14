"""Typed artifact records: the published `Artifact`, references (`name:vN` / `name:alias`), lineage."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nemotron.artifacts.errors import ArtifactError
from nemotron.artifacts.kinds import ArtifactKind, KindMetadata, TokenizerInfo, parse_metadata
from nemotron.artifacts.manifest import Manifest
from nemotron.artifacts.names import validate_artifact_name

_VERSION_RE = re.compile(r"^v([0-9]+)$")


def validate_name(name: str) -> str:
    """Return `name` if it is a valid artifact name, else raise ArtifactError saying the rule (artifacts.names)."""
    return validate_artifact_name(name)


@dataclass(frozen=True)
class ArtifactRef:
    """A reference to one artifact version: `name:v3`, `name:latest`, `name:<alias>` or `name`."""

    name: str
    selector: str = "latest"

    @classmethod
    def parse(cls, text: str) -> ArtifactRef:
        name, _, selector = text.strip().partition(":")
        selector = selector or "latest"
        if not _VERSION_RE.match(selector):
            validate_name(selector)  # an alias names a file in the registry: no paths
        return cls(validate_name(name), selector)

    @property
    def version(self) -> int | None:
        """The version number when the selector is `vN`, else None (an alias)."""
        match = _VERSION_RE.match(self.selector)
        return int(match.group(1)) if match else None

    @classmethod
    def from_text(cls, value: Any) -> ArtifactRef | None:
        """The reference `value` spells, or None: a ref here is a string with ':' that parses
        (`name:latest`, `name:v3`, `name:alias`); paths, URLs and interpolations are not refs."""
        if not isinstance(value, str) or ":" not in value:
            return None
        try:
            return cls.parse(value)
        except ArtifactError:
            return None

    def __str__(self) -> str:
        return f"{self.name}:{self.selector}"


def fingerprint_alias(fingerprint: str) -> str:
    """The alias a published version gets from its stage's pipe fingerprint: `NAME:fp-<fingerprint>` finds it."""
    return f"fp-{fingerprint}"


@dataclass(frozen=True)
class Lineage:
    """What produced an artifact (stage, job, config hash, code version) and what it consumed."""

    stage: str
    job_name: str | None = None
    job_id: str | None = None
    config_sha256: str | None = None
    git_commit: str | None = None
    package_version: str | None = None
    inputs: tuple[str, ...] = ()  # exact refs of consumed artifacts, source files, tokenizers
    packages: dict[str, str] = field(default_factory=dict)  # versions of the libraries that did the work
    fingerprint: str | None = None  # set by `nemotron ... pipe`: the stage's config + inputs + code hash

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = list(self.inputs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lineage:
        return cls(**{**data, "inputs": tuple(data.get("inputs", ())), "packages": dict(data.get("packages", {}))})


def installed_versions(*names: str) -> dict[str, str]:
    """Versions of the named distributions that are installed (absent ones are left out)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


@dataclass(frozen=True)
class Artifact:
    """One published, immutable artifact version and where its files are."""

    name: str
    version: int
    kind: ArtifactKind
    path: Path  # the version directory; files named in `files` are relative to it
    created_at: str
    lineage: Lineage
    metadata: dict[str, Any] = field(default_factory=dict)  # raw dict, as stored in artifact.json
    files: dict[str, str] = field(default_factory=dict)  # role -> path relative to `path`, or absolute
    manifest: Manifest | None = None  # None for versions published before manifests were recorded

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"

    def typed_metadata(self) -> KindMetadata:
        """`metadata` as the kind's dataclass (e.g. PretrainDataMeta); unknown keys land in `extra`.

        Raises ArtifactError naming this artifact and every missing or mistyped key.
        """
        return parse_metadata(self.kind, self.metadata, where=f"artifact {self.ref}")

    def tokenizer(self) -> TokenizerInfo | None:
        """The tokenizer its metadata records (data and model kinds), if any."""
        tokenizer = getattr(self.typed_metadata(), "tokenizer", None)
        return tokenizer if isinstance(tokenizer, TokenizerInfo) else None

    def file(self, role: str) -> Path:
        """Absolute path of the file recorded under `role` (e.g. 'blend'); in-place data is absolute."""
        if role not in self.files:
            raise ArtifactError(
                f"artifact {self.ref} has no file {role!r}; it has: {', '.join(sorted(self.files)) or 'none'}"
            )
        return (self.path / self.files[role]).resolve()
