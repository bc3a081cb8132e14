"""Artifact references in configs: pinning run.* refs, the ${art:...} resolver, launcher.prepare and dry run."""

from __future__ import annotations

import sys
import textwrap

import pytest
from omegaconf import OmegaConf

from nemotron.artifacts import (
    ArtifactError,
    ArtifactKind,
    FileRegistry,
    Lineage,
    PinnedRegistry,
    ResolvedRef,
    resolve_references,
)
from nemotron.config import ConfigError
from nemotron.config.resolvers import artifact_registry, register_resolvers


def publish(registry: FileRegistry, name: str, text: str = "{}", **metadata):
    with registry.staging(name) as staging:
        (staging.path / "blend.json").write_text(text)
        return registry.publish(
            staging,
            kind=ArtifactKind.PRETRAIN_DATA,
            lineage=Lineage(stage="test"),
            metadata=metadata,
            files={"blend": "blend.json"},
        )


@pytest.fixture
def filled(registry) -> FileRegistry:
    publish(registry, "web", tokens=1)
    publish(registry, "web", tokens=2, tokenizer={"vocab_size": 99})
    publish(registry, "code")
    registry.set_alias("web:v1", "golden")
    return registry


# -- resolve_references ------------------------------------------------------------------


def test_pins_latest_alias_and_keeps_exact_versions(filled):
    config = {
        "run": {"data": "web:latest", "old": "web:golden", "exact": "code:v1", "bare": "web:", "seed": 3},
        "other": "web:latest",
    }
    pinned, refs = resolve_references(config, filled)
    assert pinned["run"] == {"data": "web:v2", "old": "web:v1", "exact": "code:v1", "bare": "web:v2", "seed": 3}
    assert pinned["other"] == "web:latest"  # only run.* holds references
    assert config["run"]["data"] == "web:latest"  # the input is not modified
    root = filled.root
    assert refs == [
        ResolvedRef("run.data", "web:latest", "web:v2", "pretrain-data", root / "web" / "v2"),
        ResolvedRef("run.old", "web:golden", "web:v1", "pretrain-data", root / "web" / "v1"),
        ResolvedRef("run.exact", "code:v1", "code:v1", "pretrain-data", root / "code" / "v1"),
        ResolvedRef("run.bare", "web:", "web:v2", "pretrain-data", root / "web" / "v2"),
    ]


def test_nested_values_and_non_references(filled):
    config = {
        "run": {
            "inputs": ["web:latest", {"ckpt": "code:latest"}],
            "path": "/data/x.jsonl",
            "url": "hf://org/name",
            "interp": "${oc.env:HOME}",
            "plain": "web",  # a bare name without ':' is just a string
            "missing": None,
        }
    }
    pinned, refs = resolve_references(config, filled)
    assert pinned["run"]["inputs"] == ["web:v2", {"ckpt": "code:v1"}]
    assert [r.key for r in refs] == ["run.inputs[0]", "run.inputs[1].ckpt"]
    for key in ("path", "url", "interp", "plain", "missing"):
        assert pinned["run"][key] == config["run"][key]


def test_no_run_section_means_nothing_to_pin(filled):
    assert resolve_references({"a": 1}, filled) == ({"a": 1}, [])


def test_missing_reference_names_key_ref_and_existing(filled):
    with pytest.raises(ArtifactError) as err:
        resolve_references({"run": {"data": "books:latest"}}, filled)
    message = str(err.value)
    assert "config key 'run.data'" in message and "books:latest" in message
    assert "code, web" in message


def test_missing_version_lists_versions(filled):
    with pytest.raises(ArtifactError, match=r"run\.data.*web:v9.*v1, v2"):
        resolve_references({"run": {"data": "web:v9"}}, filled)


def test_pinned_registry_resolves_each_reference_once(filled):
    pinned = PinnedRegistry(filled)
    assert pinned.resolve("web:latest").version == 2
    publish(filled, "web")  # v3 appears mid-launch
    assert pinned.resolve("web:latest").version == 2
    assert pinned.resolve("web").version == 2  # same reference, spelled differently
    assert filled.resolve("web:latest").version == 3


# -- the ${art:...} resolver -----------------------------------------------------------------


def resolve_with(registry, config: dict) -> dict:
    register_resolvers()
    with artifact_registry(registry):
        return OmegaConf.to_container(OmegaConf.create(config), resolve=True)


def test_art_resolver_fields(filled):
    root = filled.root
    out = resolve_with(
        filled,
        {
            "run": {"data": "web:latest"},
            "path": "${art:data,path}",
            "default": "${art:data}",
            "blend": "${art:data,blend}",
            "version": "${art:data,version}",
            "ref": "${art:data,ref}",
            "kind": "${art:data,kind}",
            "vocab": "${art:data,metadata.tokenizer.vocab_size}",
            "literal": "${art:web:golden,blend}",
            "quoted": "${art:'code:v1',path}",
        },
    )
    assert out["path"] == out["default"] == str(root / "web" / "v2")
    assert out["blend"] == str(root / "web" / "v2" / "blend.json")
    assert out["version"] == 2 and out["ref"] == "web:v2" and out["kind"] == "pretrain-data"
    assert out["vocab"] == 99
    assert out["literal"] == str(root / "web" / "v1" / "blend.json")
    assert out["quoted"] == str(root / "code" / "v1")


def test_art_resolver_uses_default_registry_root_outside_a_launch(filled, monkeypatch):
    monkeypatch.setenv("NEMOTRON_ARTIFACTS_ROOT", str(filled.root))
    register_resolvers()
    cfg = OmegaConf.create({"run": {"data": "web:golden"}, "v": "${art:data,version}"})
    assert OmegaConf.to_container(cfg, resolve=True)["v"] == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"x": "${art:data,path}"}, "config key 'run.data' does not exist"),
        ({"run": {"data": 5}, "x": "${art:data,path}"}, "is not a reference"),
        ({"run": {"data": "web:v1"}, "x": "${art:data,weights}"}, "has no field 'weights'"),
    ],
)
def test_art_resolver_errors(filled, config, message):
    register_resolvers()
    from nemotron.config import resolved_container

    with artifact_registry(filled):
        with pytest.raises(ConfigError) as err:
            resolved_container(OmegaConf.create(config), source="test.yaml")
    assert message in str(err.value) and "'x'" in str(err.value)


def test_a_missing_artifact_read_by_an_interpolation_names_the_run_key_not_the_interpolation(filled):
    register_resolvers()
    from nemotron.artifacts import ArtifactNotFoundError
    from nemotron.config import resolved_container

    config = {"run": {"data": "books:latest"}, "model": {"vocab_size": "${art:data,metadata.tokenizer.vocab_size}"}}
    with artifact_registry(filled):
        with pytest.raises(ArtifactNotFoundError) as err:
            resolved_container(OmegaConf.create(config), source="test.yaml")
    message = str(err.value)
    assert message.startswith("config key 'run.data': artifact books:latest not found in registry ")
    assert "artifacts there: code, web" in message
    assert "set run.data=NAME:VERSION to an artifact that exists" in message
    assert "model.vocab_size" not in message and "interpolation" not in message
    assert (err.value.key, err.value.name) == ("run.data", "books")


# -- through launcher.prepare and the dry run ------------------------------------------------

SCHEMA = textwrap.dedent(
    """
    from dataclasses import dataclass, field

    @dataclass
    class RunSection:
        data: str
        base: str = ""

    @dataclass
    class ArtTestConfig:
        run: RunSection
        blend_path: str
        data_dir: str
        data_version: int
    """
)


@pytest.fixture
def test_stage(tmp_path, monkeypatch):
    """A StageSpec whose config dir and schema module live in tmp_path."""
    from nemotron.stages.catalog import StageSpec

    module_dir = tmp_path / "stage_module"
    module_dir.mkdir()
    (module_dir / "art_test_stage.py").write_text(SCHEMA)
    monkeypatch.syspath_prepend(str(module_dir))
    sys.modules.pop("art_test_stage", None)
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / "default.yaml").write_text(
        "run:\n  data: web:latest\n"
        "blend_path: ${art:data,blend}\ndata_dir: ${art:data,path}\ndata_version: ${art:data,version}\n"
    )
    return StageSpec(
        key="art-test",
        family="test",
        title="artifact references",
        entry_module="art_test_stage",
        config_subdir=str(config_dir),
        schema="art_test_stage:ArtTestConfig",
    )


def prepare(stage, overrides=(), profile=None):
    from nemotron.execution.launcher import LaunchRequest
    from nemotron.execution.launcher import prepare as launcher_prepare

    return launcher_prepare(LaunchRequest(stage, None, tuple(overrides), profile, ("test",)))


def use_registry_from_env_toml(nemotron_home, root, extra: str = "") -> None:
    (nemotron_home.parent / "env.toml").write_text(f'[artifacts]\nroot = "{root}"\n{extra}')


def test_prepare_pins_references_and_dry_run_lists_them(nemotron_home, tmp_path, test_stage):
    from nemotron.execution.dry_run import render_dry_run

    registry = FileRegistry(tmp_path / "team-registry")  # env.toml [artifacts] root, not the default
    publish(registry, "web")
    publish(registry, "web")
    publish(registry, "base")
    use_registry_from_env_toml(nemotron_home, registry.root)

    prepared = prepare(test_stage, ["+run.base=base:latest"])
    config = prepared.job.config
    v2 = registry.root / "web" / "v2"
    assert config["run"] == {"data": "web:v2", "base": "base:v1"}  # the job sees exact versions
    assert config["blend_path"] == str(v2 / "blend.json")
    assert config["data_dir"] == str(v2) and config["data_version"] == 2
    assert prepared.artifact_refs == (
        ResolvedRef("run.data", "web:latest", "web:v2", "pretrain-data", v2),
        ResolvedRef("run.base", "base:latest", "base:v1", "pretrain-data", registry.root / "base" / "v1"),
    )
    assert prepared.job.env["NEMOTRON_ARTIFACTS_ROOT"] == str(registry.root)

    text = render_dry_run(prepared)
    section = text.split("--- artifact references ---\n", 1)[1].split("\n\n---", 1)[0]
    assert section.splitlines() == [
        "run.data: web:latest -> web:v2 (pretrain-data)",
        f"  path: {v2}",
        "run.base: base:latest -> base:v1 (pretrain-data)",
        f"  path: {registry.root / 'base' / 'v1'}",
    ]
    assert "data: web:v2" in text.split("--- resolved config (config.yaml) ---", 1)[1]
    assert not any(nemotron_home.rglob("*"))  # a dry run writes nothing


def test_prepare_with_override_to_exact_version(nemotron_home, tmp_path, test_stage):
    registry = FileRegistry(tmp_path / "reg")
    publish(registry, "web")
    publish(registry, "web")
    use_registry_from_env_toml(nemotron_home, registry.root)
    prepared = prepare(test_stage, ["run.data=web:v1"])
    assert prepared.job.config["data_version"] == 1
    assert prepared.artifact_refs[0].requested == "web:v1" and prepared.artifact_refs[0].pinned == "web:v1"


def test_prepare_missing_reference_fails_before_anything_runs(nemotron_home, tmp_path, test_stage):
    registry = FileRegistry(tmp_path / "reg")
    publish(registry, "code")
    use_registry_from_env_toml(nemotron_home, registry.root)
    with pytest.raises((ArtifactError, ConfigError)) as err:
        prepare(test_stage)
    message = str(err.value)
    assert "web:latest" in message and "artifacts there: code" in message
    assert "run.data" in message


def test_prepare_passes_wandb_project_to_the_job(nemotron_home, tmp_path, test_stage):
    registry = FileRegistry(tmp_path / "reg")
    publish(registry, "web")
    use_registry_from_env_toml(nemotron_home, registry.root, '\n[wandb]\nproject = "nano3"\nentity = "team"\n')
    env = prepare(test_stage).job.env
    assert env["NEMOTRON_WANDB_PROJECT"] == "nano3" and env["NEMOTRON_WANDB_ENTITY"] == "team"
    use_registry_from_env_toml(nemotron_home, registry.root)
    env = prepare(test_stage).job.env
    assert "NEMOTRON_WANDB_PROJECT" not in env and "NEMOTRON_WANDB_ENTITY" not in env
