"""The plan of a pipe: per stage its fingerprint, its inputs wired to earlier stages, and run or skip with why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nemotron.artifacts import ArtifactError, ArtifactNotFoundError, ArtifactRef, fingerprint_alias
from nemotron.config.errors import ConfigError
from nemotron.errors import NemotronError
from nemotron.pipeline.fingerprint import FingerprintParts, code_identity, recipe_file_digests
from nemotron.pipeline.pipe_config import PipeConfig, PipeStage
from nemotron.pipeline.records import PipeRecord, in_flight, last_failure
from nemotron.pipeline.selection import Selection

if TYPE_CHECKING:
    from nemotron.artifacts.resolution import Resolver

RUN = "run"  # actions of a stage in a plan
SKIP = "skip"
OFF = "off"  # outside --from/--to/--only and not done: neither run nor read
WAIT = "wait"  # an earlier pipe's job of this fingerprint is still queued or running: nothing may start
RUN_NAME_DIGITS = 8  # a pipe's training run folder: <run_name>-<first digits of the fingerprint>


@dataclass(frozen=True)
class InputLink:
    """One artifact reference a stage reads, and what the pipe makes it read."""

    key: str  # run.model, run.models[1]
    requested: str  # as the stage config writes it: nano3-sft-tiny:latest
    ref: str  # what the stage reads: nano3-sft-tiny:fp-<fingerprint> (made in the pipe) or name:v3
    source: str | None  # the pipe stage that makes it, or None (an artifact that exists, or a path)


@dataclass(frozen=True)
class StagePlan:
    """What a pipe does with one stage."""

    stage: PipeStage
    fingerprint: str
    artifact: str  # the artifact name the stage publishes
    action: str  # RUN | SKIP | OFF | WAIT
    reason: str
    overrides: tuple[str, ...]  # every override of the stage's launch: the pipe's, the command line's, wiring
    inputs: tuple[InputLink, ...] = ()
    done: str | None = None  # the artifact version (name:vN) that already has this fingerprint
    parts: FingerprintParts | None = None

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def output_ref(self) -> str:
        """How later stages name this stage's output: the version that is done when the stage is skipped, else
        its fingerprint alias (the version this run publishes; a forced run's, not the one done before)."""
        if self.done and self.action != RUN:
            return self.done
        return f"{self.artifact}:{fingerprint_alias(self.fingerprint)}"

    @property
    def upstream(self) -> tuple[str, ...]:
        """The pipe stages this one reads from, in pipe order, each once."""
        return tuple(dict.fromkeys(link.source for link in self.inputs if link.source))


@dataclass(frozen=True)
class PipePlan:
    """A pipe's stages, each planned; the code identity its fingerprints cover."""

    pipe: PipeConfig
    code: str
    stages: tuple[StagePlan, ...] = field(default_factory=tuple)

    @property
    def to_run(self) -> tuple[StagePlan, ...]:
        return tuple(stage for stage in self.stages if stage.action == RUN)

    def refuse_if_waiting(self) -> None:
        """NemotronError naming the first stage an earlier pipe still runs, and how to wait for or cancel it."""
        for stage in self.stages:
            if stage.action == WAIT:
                pipe = stage.reason.rsplit(" ", 1)[-1]
                raise NemotronError(
                    f"stage {stage.name} (fingerprint {stage.fingerprint}) is {stage.reason}; wait for it "
                    f"(nemotron jobs status {pipe} --wait) or cancel it (nemotron jobs cancel {pipe}), then run "
                    "the pipe again"
                )


def plan_pipe(
    pipe: PipeConfig, overrides: dict[str, tuple[str, ...]], selection: Selection, registry: Resolver
) -> PipePlan:
    """Plan every stage in order; raises ConfigError/ArtifactError naming the stage and key at fault."""
    from nemotron.pipeline.records import list_pipe_records

    code = code_identity(pipe.code_version)
    history = list_pipe_records()
    planned: list[StagePlan] = []
    for stage in pipe.stages:
        cli = overrides.get(stage.name, ())
        planned.append(_plan_stage(stage, cli, planned, selection, registry, code, pipe.path.name, history))
    return PipePlan(pipe, code, tuple(planned))


def _plan_stage(
    stage: PipeStage,
    cli_overrides: tuple[str, ...],
    earlier: list[StagePlan],
    selection: Selection,
    registry: Resolver,
    code: str,
    pipe_file: str,
    history: list[PipeRecord],
) -> StagePlan:
    from omegaconf import OmegaConf

    from nemotron.config import load_config
    from nemotron.config.overrides import apply_overrides

    overrides = (*stage.overrides, *cli_overrides)
    try:
        loaded = load_config(
            stage.config, stage.spec.config_dir, stage.overrides, source=f"{pipe_file} stages.{stage.name}.overrides"
        )
        cfg = apply_overrides(loaded.cfg, cli_overrides, source="command line")
    except ConfigError as err:
        raise ConfigError(f"stage {stage.name}: {_addressed(str(err), stage.name, cli_overrides)}") from None
    container = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(container, dict)
    raw: dict[str, Any] = {str(key): value for key, value in container.items()}
    artifact = stage.spec.published_name(raw)
    if not artifact:
        keys = " or ".join(stage.spec.publishes) or "an artifact name"
        raise ConfigError(f"stage {stage.name} ({loaded.path}): set {keys}; the pipe finds the stage's output by it")
    makers = {plan.artifact: plan for plan in earlier}
    links, tokens, wiring = _wire_inputs(stage, raw, makers, registry, stage.name in selection.selected)
    parts = FingerprintParts(
        stage=f"{stage.spec.family}/{stage.spec.key}",
        config=_without_run_name(_with_inputs_replaced(raw, tokens)),
        recipe_files=recipe_file_digests(raw),
        inputs=dict(sorted(tokens.items())),
        code=code,
    )
    fingerprint = parts.digest()
    own_run = _own_run_folder(raw, artifact, fingerprint)
    done = _done_version(registry, artifact, fingerprint)
    action, reason = _decide(stage.name, artifact, fingerprint, done, selection, registry)
    running = in_flight(history, fingerprint) if action == RUN else None
    if running:  # the same run again would race it for its folder and its artifact
        other, entry = running
        action, reason = WAIT, f"still {entry.state} as job {entry.job} of pipe {other.name}"
    failed = last_failure(history, fingerprint) if action == RUN and not done else None
    if failed:
        before, entry = failed
        where = f"; log {entry.log}" if entry.log else ""
        reason = f"failed in {before.name} ({entry.state}{where}); {reason}"
    return StagePlan(
        stage=stage,
        fingerprint=fingerprint,
        artifact=artifact,
        action=action,
        reason=reason,
        overrides=(*overrides, *wiring, *own_run),
        inputs=tuple(links),
        done=done,
        parts=parts,
    )


def _addressed(message: str, stage: str, overrides: tuple[str, ...]) -> str:
    """A config error about the command line's overrides, with each as the pipe takes it (`sft.key=v`)."""
    for text in overrides:
        bare = text.lstrip("+~")
        for sign in ("", "+", "++", "~"):
            message = message.replace(f"'{sign}{bare}'", f"'{sign}{stage}.{bare}'")
    return message


def _wire_inputs(
    stage: PipeStage, raw: dict[str, Any], makers: dict[str, StagePlan], registry: Resolver, selected: bool
) -> tuple[list[InputLink], dict[str, str], list[str]]:
    """Each input reference of the stage: linked to the earlier stage that publishes it (`name` or
    `name:latest`), else pinned to the version that exists now. Returns the links, the fingerprint token of
    each input key, and the overrides that make the stage read exactly those."""
    section = raw.get("run")
    run_section: dict[str, Any] = section if isinstance(section, dict) else {}
    links: list[InputLink] = []
    tokens: dict[str, str] = {}
    wiring: list[str] = []
    for stage_input in stage.spec.inputs:
        value = stage_input.value_in(run_section)
        if value is None:
            continue
        key = f"run.{stage_input.key}"
        items = list(value) if isinstance(value, list | tuple) else [value]
        refs = []
        for index, item in enumerate(items):
            item_key = f"{key}[{index}]" if isinstance(value, list | tuple) else key
            link = _link(stage.name, item_key, item, makers, registry, selected)
            links.append(link)
            refs.append(link.ref)
            made_by = makers.get(ArtifactRef.parse(link.ref).name) if link.source else None
            tokens[item_key] = f"stage {link.source} fp {made_by.fingerprint}" if made_by else f"artifact {link.ref}"
        if isinstance(value, list | tuple):
            wiring.append(f"{key}=[{','.join(_override_value(ref) for ref in refs)}]")
        elif refs[0] != value:
            wiring.append(f"{key}={_override_value(refs[0])}")
    return links, tokens, wiring


def _override_value(ref: str) -> str:
    """An override's value: an artifact reference as it is (`name:fp-...`), a path quoted for Hydra's grammar."""
    parsed = ArtifactRef.from_text(ref)
    if parsed is not None and str(parsed) == ref:
        return ref
    return "'" + ref.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _link(
    stage: str, key: str, value: Any, makers: dict[str, StagePlan], registry: Resolver, selected: bool
) -> InputLink:
    if not isinstance(value, str) or "${" in value:
        raise ConfigError(
            f"stage {stage}: {key}={value!r}; in a pipe an input is an artifact reference (NAME, NAME:latest, "
            "NAME:v3) or a path"
        )
    try:
        ref = ArtifactRef.parse(value)
    except ArtifactError:
        return InputLink(key, value, value, None)  # a path (e.g. a checkpoint folder): counts as written
    maker = makers.get(ref.name) if ref.selector == "latest" else None
    if maker is not None and maker.action == OFF and selected:
        raise ConfigError(
            f"stage {stage} reads {maker.artifact} ({key}) from stage {maker.name}, which is not selected "
            f"(--from/--to/--only) and has no output with its fingerprint; include stage {maker.name}"
        )
    if maker is not None:
        return InputLink(key, value, maker.output_ref, maker.name)
    try:
        artifact = registry.resolve(ref)
    except ArtifactNotFoundError as err:
        raise err.at_key(
            f"{key} of stage {stage}",
            "no stage of this pipe publishes it; add the stage that makes it, or name an artifact that exists",
        ) from None
    return InputLink(key, value, artifact.ref, None)


def _with_inputs_replaced(raw: dict[str, Any], tokens: dict[str, str]) -> dict[str, Any]:
    """A copy of the config whose input references are their fingerprint tokens (a new `latest` of an
    input changes nothing; a new fingerprint of the stage that makes it does)."""
    import copy

    config = copy.deepcopy(raw)
    for key, token in tokens.items():
        path, index = (key.split("[")[0], int(key.split("[")[1][:-1])) if "[" in key else (key, None)
        node: Any = config
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[part]
        if index is None:
            node[parts[-1]] = token
        else:
            node[parts[-1]][index] = token
    return config


def _without_run_name(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key != "run_name"}


def _own_run_folder(raw: dict[str, Any], artifact: str, fingerprint: str) -> list[str]:
    """A stage with a run folder (training, eval) gets one per fingerprint, `<run_name>-<digits>`, so a
    changed config starts afresh while a failed run of the same fingerprint resumes; it still publishes
    under its artifact name."""
    run_name = raw.get("run_name")
    if not isinstance(run_name, str):
        return []
    overrides = [f"run_name={run_name}-{fingerprint[:RUN_NAME_DIGITS]}"]
    if "artifact_name" in raw and raw.get("artifact_name") != artifact:
        overrides.append(f"artifact_name={artifact}")
    elif "artifact_name" not in raw:
        overrides.append(f"+artifact_name={artifact}")
    return overrides


def _done_version(registry: Resolver, artifact: str, fingerprint: str) -> str | None:
    try:
        return registry.resolve(f"{artifact}:{fingerprint_alias(fingerprint)}").ref
    except ArtifactError:
        return None


def _decide(
    name: str, artifact: str, fingerprint: str, done: str | None, selection: Selection, registry: Resolver
) -> tuple[str, str]:
    if name not in selection.selected:
        if done:
            return SKIP, f"not selected; {done} has this fingerprint"
        return OFF, "not selected (--from/--to/--only)"
    if name in selection.forced:
        return RUN, "forced (--force)" + (f"; {done} has this fingerprint" if done else "")
    if done:
        return SKIP, f"done: {done} has this fingerprint"
    try:
        latest = registry.resolve(artifact)
    except ArtifactError:
        return RUN, f"no {artifact} yet"
    previous = latest.lineage.fingerprint
    if previous:
        return RUN, f"changed: {latest.ref} has fingerprint {previous}"
    return RUN, f"{latest.ref} was made outside a pipe (no fingerprint)"
