"""The default artifact registry: versioned directories under a root on shared storage.

Layout: `<root>/<name>/v<N>/` holds `artifact.json` and the artifact's files. A version is
staged under `<root>/<name>/.staging/` and renamed into place, so a crash never leaves a
version that looks complete, and two publishers of one name each get their own version.
`latest` is the highest complete version; other aliases are files under `<root>/<name>/aliases/`.
Publishing a name holds a lease on `<root>/<name>/` (see lease.py): one publisher at a time decides
what the next version holds; another waits for it (up to `publish_wait_s`), then is refused.
`artifact.json` carries a manifest (size, sha256 or mtime per file) that `verify` checks; data
outside the version dir (imports, in-place references) is recorded by absolute path, never copied.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nemotron.artifacts.errors import ArtifactError, ArtifactNotFoundError
from nemotron.artifacts.kinds import ArtifactKind, metadata_type, parse_metadata
from nemotron.artifacts.manifest import HASH_LIMIT_BYTES, Manifest, VerifyReport, build_manifest, check_manifest
from nemotron.artifacts.types import Artifact, ArtifactRef, Lineage, fingerprint_alias, validate_name
from nemotron.atomic_write import write_text_atomic
from nemotron.lease import take_lease
from nemotron.storage_errors import storage_errors

RECORD_FILE = "artifact.json"
ROOT_SETTING = "NEMOTRON_ARTIFACTS_ROOT"  # what moves the default registry (see default_registry_root)
PUBLISH_WAIT_S = 600.0  # how long a publisher waits for another publisher of the same name
_VERSION_DIR = re.compile(r"^v([0-9]+)$")


def default_registry_root() -> Path:
    """`$NEMOTRON_ARTIFACTS_ROOT`, else `$NEMOTRON_HOME/artifacts`, else `~/.nemotron/artifacts`."""
    if os.environ.get("NEMOTRON_ARTIFACTS_ROOT"):
        return Path(os.environ["NEMOTRON_ARTIFACTS_ROOT"]).expanduser()
    home = os.environ.get("NEMOTRON_HOME") or "~/.nemotron"
    return Path(home).expanduser() / "artifacts"


@dataclass
class Staging:
    """A directory being filled for a new version; publish it with `FileRegistry.publish`."""

    name: str
    path: Path


class FileRegistry:
    """Publish, list, resolve, verify and import artifacts stored as directories under `root`.

    `hash_limit`: files up to this many bytes get a sha256 in the manifest, larger ones size + mtime.
    """

    def __init__(
        self, root: Path | str, *, hash_limit: int = HASH_LIMIT_BYTES, publish_wait_s: float = PUBLISH_WAIT_S
    ) -> None:
        self.root = Path(root).expanduser()
        self.hash_limit = hash_limit
        self.publish_wait_s = publish_wait_s
        self._publishing: set[str] = set()

    @contextmanager
    def publishing(self, name: str) -> Iterator[None]:
        """Hold the publish lease of `name` (re-entrant within this registry object): a caller that
        decides what to publish from what exists (skip when unchanged) does both under it."""
        if name in self._publishing:
            yield
            return
        lease = take_lease(
            self.root / validate_name(name),
            what=f"artifact {name!r} (being published)",
            error=ArtifactError,
            wait_s=self.publish_wait_s,
        )
        self._publishing.add(name)
        try:
            yield
        finally:
            self._publishing.discard(name)
            lease.release()

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def staging(self, name: str) -> Iterator[Staging]:
        """Yield an empty staging directory for `name`; it is removed if not published.

        A registry that refuses writes (read-only, full), here or while the caller fills the directory,
        is a StorageError naming the registry and NEMOTRON_ARTIFACTS_ROOT.
        """
        staging_root = self.root / validate_name(name) / ".staging"
        with self.writing(name):
            staging_root.mkdir(parents=True, exist_ok=True)
            area = Staging(name, staging_root / uuid.uuid4().hex)
            area.path.mkdir()
            try:
                yield area
            finally:
                if area.path.exists():
                    shutil.rmtree(area.path, ignore_errors=True)

    def writing(self, name: str) -> AbstractContextManager[None]:
        """Report `name`'s folder refusing writes (read-only, full registry) as one line: a StorageError."""
        return storage_errors(f"artifact {name}", self.root / name, ROOT_SETTING)

    def publish(
        self,
        staging: Staging,
        *,
        kind: ArtifactKind,
        lineage: Lineage,
        metadata: dict[str, Any] | Any,
        files: dict[str, str],
        references: Iterable[Path | str] = (),
    ) -> Artifact:
        """Record the staged files as the next version of `staging.name` and return it.

        `metadata`: the kind's metadata dataclass (e.g. PretrainDataMeta; recommended) or a raw
        dict (stored as is). `files`: role -> path relative to the staging dir, or an absolute
        path for data used in place. `references`: more absolute files/dirs used in place. The
        manifest covers every staged file, every absolute `files` entry and every reference.
        """
        metadata = _metadata_dict(kind, metadata, staging.name)
        in_place: list[Path] = []
        for role, rel in files.items():
            target = Path(rel)
            if target.is_absolute():
                if target.resolve().is_relative_to(staging.path.resolve()):
                    raise ArtifactError(
                        f"cannot publish {staging.name}: file {rel!r} ({role}) is inside the staging "
                        f"dir; give it relative to {staging.path}"
                    )
                in_place.append(target)
            if not (staging.path / rel).exists():
                raise ArtifactError(f"cannot publish {staging.name}: file {rel!r} ({role}) was not written")
        in_place += [Path(r) for r in references]
        manifest = build_manifest(staging.path, in_place, hash_limit=self.hash_limit, skip=(RECORD_FILE,))
        record = {
            "name": staging.name,
            "kind": kind.value,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "lineage": lineage.to_dict(),
            "metadata": metadata,
            "files": files,
            "manifest": manifest.to_dict(),
        }
        with self.writing(staging.name):
            write_text_atomic(staging.path / RECORD_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
            with self.publishing(staging.name):
                artifact = self._rename_into_next_version(staging)
        if lineage.fingerprint:  # a pipe's stage: later runs of the same pipe find this version by it
            self.set_alias(artifact.ref, fingerprint_alias(lineage.fingerprint))
        return artifact

    def _rename_into_next_version(self, staging: Staging) -> Artifact:
        name_dir = self.root / staging.name
        while True:
            version = self._highest_version(name_dir) + 1
            target = name_dir / f"v{version}"
            try:
                os.rename(staging.path, target)  # atomic; fails if another publisher took vN
            except OSError:
                if target.exists():
                    continue
                raise
            return self._load(target, staging.name, version)

    def set_alias(self, ref: str | ArtifactRef, alias: str) -> None:
        """Point `alias` (not 'latest' and not of the form vN) at the version `ref` resolves to."""
        artifact = self.resolve(ref)
        if alias == "latest" or _VERSION_DIR.match(alias):
            raise ArtifactError(f"alias {alias!r} is reserved; choose another name")
        validate_name(alias)
        alias_dir = self.root / artifact.name / "aliases"
        with self.writing(artifact.name):
            alias_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(alias_dir / alias, f"v{artifact.version}\n")

    def import_existing(
        self,
        kind: ArtifactKind,
        path: Path | str,
        name: str,
        metadata: dict[str, Any] | None = None,
        lineage: Lineage | None = None,
    ) -> Artifact:
        """Register an existing blend dir (`pretrain-data`, has blend.json) or Megatron checkpoint dir
        (`model-checkpoint`) as the next version of `name`, referencing its data in place (no copy).

        Metadata detected from the files (splits and dtype from the .idx headers; step and format
        of a checkpoint) is overridden by `metadata`; the result must fit the kind's dataclass.
        """
        from nemotron.artifacts.importing import plan_import

        plan = plan_import(kind, path)
        source = Path(path).expanduser().resolve()
        typed = parse_metadata(kind, {**plan.detected, **(metadata or {})}, where=f"import of {source} as {name}")
        lineage = lineage or Lineage(stage="import", inputs=(str(source),))
        with self.staging(name) as staging:
            return self.publish(
                staging, kind=kind, lineage=lineage, metadata=typed, files=plan.files, references=plan.references
            )

    # -- checking --------------------------------------------------------------------------
    def verify(self, ref: str | ArtifactRef) -> VerifyReport:
        """Check that every file in the manifest exists with its recorded size and checksum."""
        artifact = self.resolve(ref)
        if artifact.manifest is None:
            missing = tuple(
                f"missing: {artifact.file(role)}" for role in sorted(artifact.files) if not artifact.file(role).exists()
            )
            note = "no manifest recorded (published before manifests); only checked that its files exist"
            return VerifyReport(artifact.ref, len(artifact.files), missing, (note,))
        return check_manifest(artifact.manifest, artifact.path, artifact.ref)

    # -- reading ---------------------------------------------------------------------------
    def aliases(self, name: str) -> dict[str, int]:
        """alias -> version for `name`, including `latest`; unreadable alias files are skipped."""
        name_dir = self.root / validate_name(name)
        versions = self._versions(name_dir)
        found = {"latest": versions[-1]} if versions else {}
        for alias in self._aliases(name_dir):
            text = (name_dir / "aliases" / alias).read_text().strip()
            if _VERSION_DIR.match(text):
                found[alias] = int(text[1:])
        return found

    def aliases_of(self, artifact: Artifact) -> builtins.list[str]:
        """The aliases (`latest` first) that point at this version."""
        return [a for a, v in self.aliases(artifact.name).items() if v == artifact.version]

    def names(self) -> builtins.list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._versions(p))

    def versions(self, name: str) -> builtins.list[Artifact]:
        name_dir = self.root / validate_name(name)
        return [self._load(name_dir / f"v{v}", name, v) for v in self._versions(name_dir)]

    # Named `list` (the CLI verb): inside this class body the name `list` is this method, so the
    # method signatures of the class spell the builtin as `builtins.list`.
    def list(self, kind: ArtifactKind | None = None) -> builtins.list[Artifact]:
        found = [a for name in self.names() for a in self.versions(name)]
        return [a for a in found if kind is None or a.kind == kind]

    def resolve(self, ref: str | ArtifactRef) -> Artifact:
        """The exact version `ref` names; an error lists what exists when it names nothing."""
        ref = ArtifactRef.parse(ref) if isinstance(ref, str) else ref
        name_dir = self.root / ref.name
        versions = self._versions(name_dir)
        if not versions:
            existing = ", ".join(self.names()) or "none"
            raise ArtifactNotFoundError(
                f"artifact {ref} not found in registry {self.root}; artifacts there: {existing}", ref=str(ref)
            )
        if ref.selector == "latest":
            version = versions[-1]
        elif ref.version is not None:
            version = ref.version
        else:
            alias_file = name_dir / "aliases" / ref.selector
            if not alias_file.is_file():
                raise ArtifactNotFoundError(
                    f"artifact {ref} not found: {ref.name} has no alias {ref.selector!r}; "
                    f"versions: {', '.join(f'v{v}' for v in versions)}; aliases: latest"
                    + "".join(f", {a}" for a in self._aliases(name_dir)),
                    ref=str(ref),
                )
            text = alias_file.read_text().strip()
            if not _VERSION_DIR.match(text):
                raise ArtifactError(f"alias file {alias_file} is corrupt ({text[:20]!r}); set it again with `alias`")
            version = int(text[1:])
        if version not in versions:
            raise ArtifactNotFoundError(
                f"artifact {ref} not found; versions of {ref.name}: {', '.join(f'v{v}' for v in versions)}",
                ref=str(ref),
            )
        return self._load(name_dir / f"v{version}", ref.name, version)

    # -- internals -------------------------------------------------------------------------
    @staticmethod
    def _versions(name_dir: Path) -> builtins.list[int]:
        if not name_dir.is_dir():
            return []
        found = []
        for entry in name_dir.iterdir():
            match = _VERSION_DIR.match(entry.name)
            if match and (entry / RECORD_FILE).is_file():
                found.append(int(match.group(1)))
        return sorted(found)

    def _highest_version(self, name_dir: Path) -> int:
        numbers = [int(m.group(1)) for e in name_dir.iterdir() if (m := _VERSION_DIR.match(e.name))]
        return max(numbers, default=0)

    @staticmethod
    def _aliases(name_dir: Path) -> builtins.list[str]:
        alias_dir = name_dir / "aliases"
        if not alias_dir.is_dir():
            return []
        return sorted(p.name for p in alias_dir.iterdir() if not p.name.startswith("."))

    @staticmethod
    def _load(path: Path, name: str, version: int) -> Artifact:
        try:
            record = json.loads((path / RECORD_FILE).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ArtifactError(f"artifact {name}:v{version} at {path} is unreadable: {err}") from err
        return Artifact(
            name=name,
            version=version,
            kind=ArtifactKind(record["kind"]),
            path=path,
            created_at=record["created_at"],
            lineage=Lineage.from_dict(record["lineage"]),
            metadata=record.get("metadata", {}),
            files=record.get("files", {}),
            manifest=Manifest.from_dict(record["manifest"], f"{name}:v{version}") if "manifest" in record else None,
        )


def _metadata_dict(kind: ArtifactKind, metadata: Any, name: str) -> dict[str, Any]:
    """Raw dicts are stored as given; a metadata dataclass must be the kind's own."""
    if isinstance(metadata, dict):
        return metadata
    expected = metadata_type(kind)
    if not isinstance(metadata, expected):
        raise ArtifactError(
            f"cannot publish {name}: metadata is a {type(metadata).__name__}, but kind {kind.value} "
            f"takes {expected.__name__} (or a dict)"
        )
    return metadata.to_dict()
