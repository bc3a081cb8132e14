"""`nemotron artifacts list|show|lineage|import|alias|verify|mirror`: the artifact registry from the shell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from nemotron.cli.output import columns, fail, literal

if TYPE_CHECKING:
    from nemotron.artifacts import Artifact, ArtifactKind, FileRegistry
    from nemotron.artifacts.lineage_graph import LineageNode
    from nemotron.env import EnvFile

KINDS = ("pretrain-data", "sft-data", "rl-data", "model-checkpoint", "eval")  # ArtifactKind values (checked in a test)

app = typer.Typer(
    help="Browse, check and register versioned artifacts (data, checkpoints) and their lineage.\n\n"
    "The registry is env.toml \\[artifacts] root, else $NEMOTRON_ARTIFACTS_ROOT, else $NEMOTRON_HOME/artifacts.\n\n"
    "Example: nemotron artifacts show nano3-pretrain-data-tiny:latest",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _env_file() -> EnvFile:
    from nemotron.env import find_env_file, load_env_file

    return load_env_file(find_env_file())


def configured_registry() -> FileRegistry:
    from nemotron.artifacts import FileRegistry, default_registry_root

    return FileRegistry(_env_file().artifacts_root or default_registry_root())


def _kind(text: str) -> ArtifactKind:
    from nemotron.artifacts import ArtifactError, ArtifactKind

    try:
        return ArtifactKind(text)
    except ValueError:
        raise ArtifactError(f"unknown artifact kind {text!r}; kinds: {', '.join(KINDS)}") from None


def _produced_by(artifact: Artifact) -> str:
    lineage = artifact.lineage
    job = f" {lineage.job_name}" if lineage.job_name else ""
    job_id = f" ({lineage.job_id})" if lineage.job_id else ""
    return f"{lineage.stage}{job}{job_id}"


@app.command("list")
def list_artifacts(
    kind: str | None = typer.Option(None, "--kind", "-k", help=f"only this kind: {', '.join(KINDS)}"),
) -> None:
    """List every artifact version with its kind, aliases and producer.

    Example: nemotron artifacts list --kind pretrain-data
    """
    registry = configured_registry()
    artifacts = registry.list(_kind(kind) if kind else None)
    if not artifacts:
        literal(f"no {kind + ' ' if kind else ''}artifacts in {registry.root}")
        return
    rows = [("REF", "KIND", "CREATED", "ALIASES", "PRODUCED BY")]
    for artifact in artifacts:
        aliases = ",".join(registry.aliases_of(artifact)) or "-"
        rows.append((artifact.ref, artifact.kind.value, artifact.created_at, aliases, _produced_by(artifact)))
    columns(rows)


@app.command()
def show(ref: str = typer.Argument(..., help="NAME, NAME:latest, NAME:vN or NAME:ALIAS")) -> None:
    """Show one version: location, aliases, files, manifest summary, lineage and metadata.

    Example: nemotron artifacts show nano3-pretrain-data-tiny:v1
    """
    import yaml

    from nemotron.artifacts import ArtifactError

    registry = configured_registry()
    artifact = registry.resolve(ref)
    lineage = artifact.lineage.to_dict()
    details: dict[str, Any] = {
        "ref": artifact.ref,
        "kind": artifact.kind.value,
        "path": str(artifact.path),
        "created_at": artifact.created_at,
        "aliases": registry.aliases_of(artifact),
        "files": {role: str(artifact.file(role)) for role in sorted(artifact.files)},
        "manifest": artifact.manifest.summary() if artifact.manifest else "none (published before manifests)",
        "lineage": {k: v for k, v in lineage.items() if v not in (None, [], ())},
    }
    try:
        details["metadata"] = artifact.typed_metadata().to_dict()
    except ArtifactError as err:
        details["metadata"] = artifact.metadata
        details["metadata_check"] = str(err)
    literal(yaml.safe_dump(details, sort_keys=False, default_flow_style=False, width=10_000).rstrip())


def _render_tree(node: LineageNode, prefix: str = "", last: bool = True, root: bool = True) -> list[str]:
    if node.artifact is not None:
        label = (
            f"{node.label}  {node.artifact.kind.value}  from {_produced_by(node.artifact)}, {node.artifact.created_at}"
        )
    else:
        label = node.label
    if node.note:
        label += f"  ({node.note})"
    lines = [label if root else f"{prefix}{'└── ' if last else '├── '}{label}"]
    child_prefix = "" if root else prefix + ("    " if last else "│   ")
    for i, child in enumerate(node.children):
        lines += _render_tree(child, child_prefix, i == len(node.children) - 1, False)
    return lines


@app.command()
def lineage(ref: str = typer.Argument(..., help="NAME, NAME:latest, NAME:vN or NAME:ALIAS")) -> None:
    """Print what produced a version and, recursively, the artifacts it consumed.

    Example: nemotron artifacts lineage nano3-pretrain-data-tiny:latest
    """
    from nemotron.artifacts.lineage_graph import lineage_tree

    literal("\n".join(_render_tree(lineage_tree(configured_registry(), ref))))


def _parse_meta(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs (dotted keys nest; values are YAML: 12, 1.5, true, [a, b], text)."""
    import yaml

    from nemotron.artifacts import ArtifactError

    result: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ArtifactError(f"--meta {item!r}: expected KEY=VALUE, e.g. --meta step=1000")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = result
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ArtifactError(f"--meta {item!r}: {part!r} is already set to a value, not a mapping")
        node[leaf] = value
    return result


@app.command("import")
def import_(
    kind: str = typer.Argument(
        ..., help="pretrain-data (a dir with blend.json) or model-checkpoint (a Megatron checkpoint dir)"
    ),
    path: str = typer.Argument(..., help="the existing directory; its data stays where it is (no copy)"),
    name: str = typer.Option(..., "--name", "-n", help="artifact name; the import becomes its next version"),
    meta: list[str] = typer.Option([], "--meta", "-m", help="metadata KEY=VALUE (dotted keys nest), repeatable"),
    alias: list[str] = typer.Option([], "--alias", "-a", help="also set this alias on the new version, repeatable"),
) -> None:
    """Register an existing blend or checkpoint directory as an artifact version, in place.

    Example: nemotron artifacts import model-checkpoint /lustre/ckpts/run7 --name nano3-base --meta tokens_seen=1000000
    """
    from pathlib import Path

    from nemotron.artifacts.mirrors import mirror_artifact, mirrors_from_settings

    env_file = _env_file()
    mirrors = mirrors_from_settings(env_file.wandb, env_file.path)  # fails early if wandb is missing
    registry = configured_registry()
    artifact = registry.import_existing(_kind(kind), path, name, metadata=_parse_meta(meta))
    for item in alias:
        registry.set_alias(artifact.ref, item)
    literal(
        f"imported {Path(path).expanduser().resolve()} as {artifact.ref} ({artifact.kind.value}) at {artifact.path}"
    )
    literal(f"manifest: {artifact.manifest.summary() if artifact.manifest else 'none'}")
    for record in mirror_artifact(registry, artifact, mirrors, tuple(alias)):
        literal(f"mirrored to W&B {record.target} as {record.name} (aliases: {', '.join(record.aliases)})")


@app.command("alias")
def alias_(
    ref: str = typer.Argument(..., help="the version to point at: NAME:vN, NAME:latest or NAME:ALIAS"),
    name: str = typer.Argument(..., help="the alias (not 'latest' or vN)"),
) -> None:
    """Point an alias at a version (moving it if it exists).

    Example: nemotron artifacts alias nano3-pretrain-data-tiny:v3 golden
    """
    registry = configured_registry()
    artifact = registry.resolve(ref)
    registry.set_alias(artifact.ref, name)
    literal(f"{artifact.name}:{name} -> {artifact.ref}")


@app.command()
def verify(ref: str = typer.Argument(..., help="NAME, NAME:latest, NAME:vN or NAME:ALIAS")) -> None:
    """Check every file of a version against its manifest (exists, size, sha256); exit 1 on problems.

    Example: nemotron artifacts verify nano3-pretrain-data-tiny:latest
    """
    report = configured_registry().verify(ref)
    for warning in report.warnings:
        literal(f"warning: {warning}")
    if report.ok:
        literal(f"ok: {report.ref}: {report.checked} files verified")
        return
    for problem in report.problems:
        literal(f"  {problem}")
    fail(f"{report.ref}: {len(report.problems)} problem(s) in {report.checked} files (listed above)")
    raise typer.Exit(1)


@app.command()
def mirror(ref: str = typer.Argument(..., help="NAME, NAME:latest, NAME:vN or NAME:ALIAS")) -> None:
    """Log a version to W&B (env.toml \\[wandb]) by reference, e.g. after a failed mirror.

    Example: nemotron artifacts mirror nano3-pretrain-data-tiny:v3
    """
    from nemotron.artifacts import ArtifactError
    from nemotron.artifacts.mirrors import mirror_artifact, mirrors_from_settings

    env_file = _env_file()
    if env_file.wandb is None:
        where = env_file.path or "env.toml (none found)"
        raise ArtifactError(f'nothing to mirror to: {where} has no [wandb] table; add one with project = "..."')
    registry = configured_registry()
    artifact = registry.resolve(ref)
    for record in mirror_artifact(registry, artifact, mirrors_from_settings(env_file.wandb, env_file.path)):
        literal(
            f"mirrored {artifact.ref} to W&B {record.target} as {record.name} (aliases: {', '.join(record.aliases)})"
        )
