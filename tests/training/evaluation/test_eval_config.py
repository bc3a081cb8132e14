"""The eval config: the built-in recipes load, and every bad setting is refused naming its key and the fix."""

from __future__ import annotations

import pytest

from nemotron.config import load_config, to_dataclass
from nemotron.config.errors import ConfigError
from nemotron.stages.catalog import NANO3_EVAL
from nemotron.training.evaluation.config import (
    EvalConfig,
    EvalData,
    EvalRefs,
    LmEvalSection,
    PerplexitySection,
    RlSection,
    SftLossSection,
)


def load(name: str, *overrides: str) -> EvalConfig:
    loaded = load_config(name, NANO3_EVAL.config_dir, overrides)
    return to_dataclass(loaded.cfg, EvalConfig, source=str(loaded.path), overrides=loaded.overrides)


def test_the_built_in_configs_load():
    tiny = load("tiny")
    assert tiny.run.models == ("nano3-pretrain-tiny:latest", "nano3-sft-tiny:latest", "nano3-rl-tiny:latest")
    data = ("nano3-pretrain-data-tiny:latest", "nano3-sft-data-tiny:latest", "nano3-rl-data-tiny:latest")
    assert tiny.run.data == EvalData(*data)
    assert tiny.eval_artifact_name == tiny.run_name == "nano3-eval-tiny"
    assert tiny.rl.max_new_tokens + 64 <= 128, "the tiny prompts (<= 64 tokens) and answers fit the tiny model"
    default = load("default")
    assert default.run.models == ("nano3-pretrain:latest", "nano3-sft:latest", "nano3-rl:latest")
    assert default.lm_eval.tasks == () and default.perplexity.seq_length is None


def test_a_config_that_measures_nothing_is_refused():
    with pytest.raises(ConfigError, match=r"nothing to measure: set run.data.pretrain .* or lm_eval.tasks"):
        load("tiny", "run.data.pretrain=null", "run.data.sft=null", "run.data.rl=null")
    only_lm_eval = load("tiny", "run.data={pretrain: null, sft: null, rl: null}", "lm_eval.tasks=[arc_easy]")
    assert only_lm_eval.lm_eval.tasks == ("arc_easy",)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("run.models=[]",), "run.models is empty"),
        (("run.models=[a:v1,b:v1,a:v1]",), "names a:v1 more than once"),
        (("rl.temperature=0",), r"rl.temperature=0.0 must be > 0"),
        (("rl.top_p=1.5",), r"rl.top_p=1.5 must be in \(0, 1\]"),
        (("rl.samples_per_prompt=-1",), "rl.samples_per_prompt=-1 must be an integer >= 0"),
        (("perplexity.split=holdout",), "perplexity.split='holdout' must be one of train, valid, test"),
        (("perplexity.batches=0",), "perplexity.batches=0 must be a positive integer"),
        (("sft_loss.rows=0",), "sft_loss.rows=0 must be a positive integer"),
        (("lm_eval.limit=0",), "lm_eval.limit=0.0 must be > 0"),
        (("samples=-2",), "samples=-2 must be an integer >= 0"),
        (("run_name=bad/name",), "run_name"),
        (("rl.temprature=0.5",), "did you mean 'rl.temperature'"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load("tiny", *overrides)


def test_sections_default_to_the_test_split():
    config = EvalConfig(run=EvalRefs(models=("m:v1",), data=EvalData(rl="r:v1")), run_name="e")
    assert (config.perplexity, config.sft_loss, config.rl.split, config.lm_eval) == (
        PerplexitySection(),
        SftLossSection(),
        "test",
        LmEvalSection(),
    )
    assert RlSection().stop_tokens == ("<|im_end|>",)
