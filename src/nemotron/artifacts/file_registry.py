"""The default artifact registry: versioned directories under a root on shared storage.

Layout: `<root>/<name>/v<N>/` holds `artifact.json` and the artifact's files. A version is
staged under `<root>/<name>/.staging/` and renamed into place, so a crash never leaves a
version that looks complete, and two publishers of one name each get their own version.
`latest` is the highest complete version; other aliases are files under `<root>/<name>/aliases/`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from nemotron.artifacts.errors import ArtifactError
from nemotron.artifacts.types import Artifact, ArtifactKind, ArtifactRef, Lineage, validate_name

RECORD_FILE = "artifact.json"
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
    """Publish, list and resolve artifacts stored as directories under `root`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def staging(self, name: str) -> Iterator[Staging]:
        """Yield an empty staging directory for `name`; it is removed if not published."""
        staging_root = self.root / validate_name(name) / ".staging"
        staging_root.mkdir(parents=True, exist_ok=True)
        area = Staging(name, staging_root / uuid.uuid4().hex)
        area.path.mkdir()
        try:
            yield area
        finally:
            if area.path.exists():
                shutil.rmtree(area.path, ignore_errors=True)

    def publish(
        self,
        staging: Staging,
        *,
        kind: ArtifactKind,
        lineage: Lineage,
        metadata: dict[str, Any],
        files: dict[str, str],
    ) -> Artifact:
        """Record the staged files as the next version of `staging.name` and return it."""
        for role, rel in files.items():
            if not (staging.path / rel).exists():
                raise ArtifactError(f"cannot publish {staging.name}: file {rel!r} ({role}) was not written")
        record = {
            "name": staging.name,
            "kind": kind.value,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "lineage": lineage.to_dict(),
            "metadata": metadata,
            "files": files,
        }
        tmp = staging.path / (RECORD_FILE + ".tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, staging.path / RECORD_FILE)
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
        alias_dir.mkdir(parents=True, exist_ok=True)
        tmp = alias_dir / f".{alias}.{uuid.uuid4().hex}"
        tmp.write_text(f"v{artifact.version}\n")
        os.replace(tmp, alias_dir / alias)

    # -- reading ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._versions(p))

    def versions(self, name: str) -> list[Artifact]:
        name_dir = self.root / validate_name(name)
        return [self._load(name_dir / f"v{v}", name, v) for v in self._versions(name_dir)]

    def list(self, kind: ArtifactKind | None = None) -> list[Artifact]:
        found = [a for name in self.names() for a in self.versions(name)]
        return [a for a in found if kind is None or a.kind == kind]

    def resolve(self, ref: str | ArtifactRef) -> Artifact:
        """The exact version `ref` names; an error lists what exists when it names nothing."""
        ref = ArtifactRef.parse(ref) if isinstance(ref, str) else ref
        name_dir = self.root / ref.name
        versions = self._versions(name_dir)
        if not versions:
            existing = ", ".join(self.names()) or "none"
            raise ArtifactError(
                f"artifact {ref} not found in registry {self.root}; artifacts there: {existing}"
            )
        if ref.selector == "latest":
            version = versions[-1]
        elif ref.version is not None:
            version = ref.version
        else:
            alias_file = name_dir / "aliases" / ref.selector
            if not alias_file.is_file():
                raise ArtifactError(
                    f"artifact {ref} not found: {ref.name} has no alias {ref.selector!r}; "
                    f"versions: {', '.join(f'v{v}' for v in versions)}; aliases: latest"
                    + "".join(f", {a}" for a in self._aliases(name_dir))
                )
            text = alias_file.read_text().strip()
            if not _VERSION_DIR.match(text):
                raise ArtifactError(f"alias file {alias_file} is corrupt ({text[:20]!r}); set it again with `alias`")
            version = int(text[1:])
        if version not in versions:
            raise ArtifactError(
                f"artifact {ref} not found; versions of {ref.name}: {', '.join(f'v{v}' for v in versions)}"
            )
        return self._load(name_dir / f"v{version}", ref.name, version)

    # -- internals -------------------------------------------------------------------------
    @staticmethod
    def _versions(name_dir: Path) -> list[int]:
        if not name_dir.is_dir():
            return []
        found = []
        for entry in name_dir.iterdir():
            match = _VERSION_DIR.match(entry.name)
            if match and (entry / RECORD_FILE).is_file():
                found.append(int(match.group(1)))
        return sorted(found)

    def _highest_version(self, name_dir: Path) -> int:
        numbers = [
            int(m.group(1)) for e in name_dir.iterdir() if (m := _VERSION_DIR.match(e.name))
        ]
        return max(numbers, default=0)

    @staticmethod
    def _aliases(name_dir: Path) -> list[str]:
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
        )
