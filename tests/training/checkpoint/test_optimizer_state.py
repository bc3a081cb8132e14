"""AdamW state as megatron sharded tensors: initialisation, key/sharding layout, exact resumption, clear errors."""

from __future__ import annotations

import checkpoint_worker as worker
import pytest
import torch
from megatron.core.dist_checkpointing.mapping import LocalNonpersistentObject, ShardedTensor, ShardedTensorFactory

from nemotron.training.checkpoint.layout import CheckpointError
from nemotron.training.checkpoint.optimizer_state import (
    STEP_KEY,
    init_optimizer_state,
    load_optimizer_state,
    optimizer_sharded_state_dict,
)
from nemotron.training.checkpoint.store import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.integration


def test_a_fresh_optimizer_gets_the_state_its_first_step_would_create(dist_group):
    first = worker.build_state(seed=1, tie=False)
    second = worker.build_state(seed=1, tie=False)
    init_optimizer_state(second[1])
    for param in second[0].parameters():
        state = second[1].state[param]
        assert float(state["step"]) == 0.0
        assert not state["exp_avg"].any() and not state["exp_avg_sq"].any()
        assert state["exp_avg"].shape == param.shape

    worker.train(*first, 1)
    worker.train(*second, 1)
    worker.assert_same(worker.snapshot(*first), worker.snapshot(*second))


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_moments_are_sharded_like_the_weights_they_belong_to(dist_group, tie):
    model, optimizer, scheduler = worker.build_state(seed=1, tie=tie)
    worker.train(model, optimizer, scheduler, 1)
    model_state = model.sharded_state_dict()
    sharded = optimizer_sharded_state_dict(optimizer, model_state, model)

    by_param = {id(v.data): v for v in model_state.values() if isinstance(v, (ShardedTensor, ShardedTensorFactory))}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert sorted(sharded["state"]) == list(range(len(params)))
    for index, param in enumerate(params):
        weight = by_param[id(param)]
        for moment in ("exp_avg", "exp_avg_sq"):
            entry = sharded["state"][index][moment]
            assert type(entry) is type(weight)
            assert entry.key == f"optimizer.state.{moment}.{weight.key}"
            assert entry.data is optimizer.state[param][moment]
            assert entry.replica_id == weight.replica_id
        assert "step" not in sharded["state"][index]
    assert float(sharded[STEP_KEY]) == 1.0
    assert [type(group["params"]) for group in sharded["param_groups"]] == [LocalNonpersistentObject] * 2
    assert [group["name"] for group in sharded["param_groups"]] == ["decay", "no_decay"]

    keys = {entry["exp_avg"].key for entry in sharded["state"].values()}
    assert "optimizer.state.exp_avg.embedding.word_embeddings.weight" in keys
    assert ("optimizer.state.exp_avg.output_layer.weight" in keys) == (not tie)
    assert ("output_layer.weight" in model_state) == (not tie)


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_a_restored_optimizer_continues_exactly_like_the_original(dist_group, tmp_path, tie):
    original = worker.build_state(seed=1, tie=tie)
    worker.train(*original, 2)
    model_state = original[0].sharded_state_dict()
    state = {
        "model": model_state,
        "optimizer": optimizer_sharded_state_dict(original[1], model_state, original[0]),
        "scheduler": original[2].state_dict(),
    }
    info = save_checkpoint(tmp_path, 2, state, {}, keep_last=None)

    resumed = worker.build_state(seed=9, tie=tie)
    request_model = resumed[0].sharded_state_dict()
    request = {
        "model": request_model,
        "optimizer": optimizer_sharded_state_dict(resumed[1], request_model, resumed[0]),
        "scheduler": resumed[2].state_dict(),
    }
    loaded = load_checkpoint(info, request)
    resumed[0].load_state_dict(loaded["model"])
    load_optimizer_state(resumed[1], loaded["optimizer"])
    resumed[2].load_state_dict(loaded["scheduler"])
    worker.assert_same(worker.snapshot(*original), worker.snapshot(*resumed))

    worker.train(*original, 1)
    worker.train(*resumed, 1)
    worker.assert_same(worker.snapshot(*original), worker.snapshot(*resumed))


def test_only_adam_style_optimizers_are_supported(dist_group):
    model, _, _ = worker.build_state(seed=1, tie=False)
    with pytest.raises(CheckpointError, match="not SGD"):
        optimizer_sharded_state_dict(torch.optim.SGD(model.parameters(), lr=0.1), model.sharded_state_dict(), model)


def test_parameters_outside_the_model_are_named(dist_group):
    model, _, _ = worker.build_state(seed=1, tie=False)
    stray = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.AdamW([*model.parameters(), stray])
    with pytest.raises(CheckpointError, match="not in the model"):
        optimizer_sharded_state_dict(optimizer, model.sharded_state_dict(), model)


def test_differing_steps_per_parameter_cannot_be_stored(dist_group):
    model, optimizer, scheduler = worker.build_state(seed=1, tie=False)
    worker.train(model, optimizer, scheduler, 1)
    optimizer.state[next(iter(model.parameters()))]["step"] = torch.tensor(5.0)
    with pytest.raises(CheckpointError, match="step differs"):
        optimizer_sharded_state_dict(optimizer, model.sharded_state_dict(), model)


def test_other_param_groups_are_a_clear_error(dist_group, tmp_path):
    model, optimizer, _ = worker.build_state(seed=1, tie=False)  # two groups: decay / no_decay
    model_state = model.sharded_state_dict()
    info = save_checkpoint(
        tmp_path, 1, {"optimizer": optimizer_sharded_state_dict(optimizer, model_state, model)}, {}, keep_last=None
    )
    single = torch.optim.AdamW(model.parameters())
    with pytest.raises(CheckpointError, match="another number of optimizer param groups") as err:
        load_checkpoint(info, {"optimizer": optimizer_sharded_state_dict(single, model_state, model)})
    assert str(info.path) in str(err.value)
    with pytest.raises(CheckpointError, match=r"param groups of sizes \[1, 1\]"):
        load_optimizer_state(single, {"state": {}, "param_groups": [{"params": [0]}, {"params": [1]}]})


def test_a_checkpoint_without_optimizer_state_says_so(dist_group, tmp_path):
    model, optimizer, _ = worker.build_state(seed=1, tie=False)
    info = save_checkpoint(tmp_path, 1, {"model": model.sharded_state_dict()}, {}, keep_last=None)
    model_state = model.sharded_state_dict()
    request = {"model": model_state, "optimizer": optimizer_sharded_state_dict(optimizer, model_state, model)}
    with pytest.raises(CheckpointError, match="no optimizer state.*load the model alone"):
        load_checkpoint(info, request)
