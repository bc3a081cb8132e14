"""File manifests of artifact versions: size and sha256 (or mtime) per file, and checking them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemotron.artifacts.errors import ArtifactError
from nemotron.checksums import sha256_file

HASH_LIMIT_BYTES = 64 * 1024 * 1024  # files up to this size get a sha256; larger ones size + mtime


@dataclass(frozen=True)
class ManifestEntry:
    """One file: `path` is relative to the version dir, or absolute for data referenced in place."""

    path: str
    size: int
    sha256: str | None = None  # recorded for files <= the manifest's hash_limit
    mtime_ns: int | None = None  # recorded instead of sha256 for larger files

    @property
    def in_place(self) -> bool:
        """True for data outside the version dir (referenced by absolute path, not copied)."""
        return os.path.isabs(self.path)

    def location(self, version_dir: Path) -> Path:
        return Path(self.path) if self.in_place else version_dir / self.path

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"size": self.size}
        if self.sha256 is not None:
            data["sha256"] = self.sha256
        if self.mtime_ns is not None:
            data["mtime_ns"] = self.mtime_ns
        return data


@dataclass(frozen=True)
class Manifest:
    """Every file of one artifact version, as recorded under `manifest` in artifact.json."""

    entries: tuple[ManifestEntry, ...]
    hash_limit: int = HASH_LIMIT_BYTES

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries)

    def summary(self) -> str:
        """One line: file count, total size, how many are hashed, how many are referenced in place."""
        hashed = sum(1 for e in self.entries if e.sha256)
        in_place = sum(1 for e in self.entries if e.in_place)
        return (
            f"{len(self.entries)} file{'' if len(self.entries) == 1 else 's'}, {format_size(self.total_bytes)} "
            f"({hashed} with sha256, "
            f"{len(self.entries) - hashed} size+mtime only (> {format_size(self.hash_limit)}); "
            f"{in_place} referenced in place)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"hash_limit": self.hash_limit, "files": {e.path: e.to_dict() for e in self.entries}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> Manifest:
        try:
            entries = tuple(
                ManifestEntry(path, int(v["size"]), v.get("sha256"), v.get("mtime_ns"))
                for path, v in data["files"].items()
            )
            return cls(entries, int(data.get("hash_limit", HASH_LIMIT_BYTES)))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ArtifactError(f"{where}: the manifest in artifact.json is malformed ({err!r})") from None


@dataclass(frozen=True)
class VerifyReport:
    """What `FileRegistry.verify` found: problems fail verification, warnings do not."""

    ref: str
    checked: int
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _entry(path: Path, key: str, hash_limit: int) -> ManifestEntry:
    stat = path.stat()
    if stat.st_size <= hash_limit:
        return ManifestEntry(key, stat.st_size, sha256=sha256_file(path))
    return ManifestEntry(key, stat.st_size, mtime_ns=stat.st_mtime_ns)


def _files_under(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(Path(dirpath) / name for name in sorted(filenames))
    return found


def build_manifest(
    version_dir: Path,
    references: Iterable[Path] = (),
    *,
    hash_limit: int = HASH_LIMIT_BYTES,
    skip: Iterable[str] = (),
) -> Manifest:
    """Entries for every file under `version_dir` (minus the top-level names in `skip`) and for
    every file of `references` (absolute files or directories used in place)."""
    skipped = set(skip)
    entries: dict[str, ManifestEntry] = {}
    for path in _files_under(version_dir):
        rel = path.relative_to(version_dir).as_posix()
        if rel not in skipped:
            entries[rel] = _entry(path, rel, hash_limit)
    for ref in references:
        ref = Path(ref)
        if not ref.is_absolute():
            raise ArtifactError(f"in-place reference {ref} must be an absolute path")
        if ref.is_dir():
            paths = _files_under(ref)
        elif ref.is_file():
            paths = [ref]
        else:
            raise ArtifactError(f"in-place reference {ref} does not exist; fix the path or remove it")
        for path in paths:
            entries.setdefault(str(path), _entry(path, str(path), hash_limit))
    return Manifest(tuple(entries.values()), hash_limit)


def check_manifest(manifest: Manifest, version_dir: Path, ref: str) -> VerifyReport:
    """Compare every recorded file with what is on disk now."""
    problems: list[str] = []
    warnings: list[str] = []
    for entry in manifest.entries:
        path = entry.location(version_dir)
        if not path.is_file():
            problems.append(f"missing: {path}")
            continue
        stat = path.stat()
        if stat.st_size != entry.size:
            problems.append(f"size changed: {path} (recorded {entry.size} bytes, now {stat.st_size})")
        elif entry.sha256 is not None:
            actual = sha256_file(path)
            if actual != entry.sha256:
                problems.append(
                    f"content changed: {path} (sha256 recorded {entry.sha256[:12]}..., now {actual[:12]}...)"
                )
        elif entry.mtime_ns is not None and stat.st_mtime_ns != entry.mtime_ns:
            warnings.append(
                f"modification time changed: {path} (size matches; content not hashed, larger than "
                f"{format_size(manifest.hash_limit)})"
            )
    return VerifyReport(ref, len(manifest.entries), tuple(problems), tuple(warnings))
