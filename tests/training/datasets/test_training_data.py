"""Training data end to end: real data prep artifacts through megatron-core GPTDatasets and the micro-batch iterator."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from nemotron.artifacts import ArtifactError, ArtifactKind, FileRegistry, Lineage
from nemotron.training.datasets.gpt import TokenIds, TrainingDataConfig, TrainingDataError, build_datasets
from nemotron.training.datasets.position import BatchLayout, MicroBatchIterator

pytestmark = pytest.mark.integration
warnings.filterwarnings("ignore", message="Transformer Engine and Apex are not installed")

REPO = Path(__file__).resolve().parents[3]
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"
CORPUS = REPO / "recipes/nano3/assets/corpus-tiny"
TINY = "nano3-pretrain-data-tiny"
NO_TEST = "nano3-pretrain-data-notest"
SEQ = 64
VOCAB = 8192
EOD = 0


def _nemotron(home: Path, cwd: Path, *args: str) -> None:
    """Run the real CLI locally with `home` as NEMOTRON_HOME and no env.toml."""
    script = Path(sys.executable).with_name("nemotron")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "nemotron"]
    env = {k: v for k, v in os.environ.items() if k != "NEMOTRON_ARTIFACTS_ROOT"}
    env_file = cwd / "env.toml"
    env_file.write_text("")
    env.update(
        NEMOTRON_HOME=str(home),
        NEMORUN_HOME=str(home / "nemo_run"),
        NEMOTRON_ENV_FILE=str(env_file),
        XDG_CONFIG_HOME=str(cwd / "xdg"),
    )
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=cwd, env=env, stdin=subprocess.DEVNULL, timeout=600
    )
    assert done.returncode == 0, f"nemotron {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A NEMOTRON_HOME holding the tiny artifact, and one prepared with an empty test split."""
    base = tmp_path_factory.mktemp("training-data")
    home = base / "home"
    home.mkdir()
    _nemotron(home, base, "nano3", "data", "prep", "pretrain", "-c", "tiny")
    _nemotron(
        home,
        base,
        "nano3",
        "data",
        "prep",
        "pretrain",
        "-c",
        "tiny",
        "split.test_fraction=0",
        f"artifact_name={NO_TEST}",
    )
    return home


@pytest.fixture(scope="module")
def registry(home) -> FileRegistry:
    return FileRegistry(home / "artifacts")


def config(tmp_path: Path, **changes) -> TrainingDataConfig:
    base = TrainingDataConfig(
        seq_length=SEQ,
        seed=1234,
        global_batch_size=8,
        micro_batch_size=2,
        train_iters=32,
        valid_iters=2,
        test_iters=2,
        cache_dir=str(tmp_path / "cache"),
        artifact_ref=f"{TINY}:latest",
    )
    return dataclasses.replace(base, **changes)


def rows(dataset, count: int) -> list[tuple[int, ...]]:
    return [tuple(dataset[i]["tokens"].tolist()) for i in range(count)]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def corpus_text() -> str:
    return "\n".join(
        json.loads(line)["text"] for path in sorted(CORPUS.glob("*.jsonl")) for line in path.read_text().splitlines()
    )


@pytest.fixture(scope="module")
def datasets(registry, tmp_path_factory):
    return build_datasets(config(tmp_path_factory.mktemp("shared-cache")), registry=registry)


# -- datasets ----------------------------------------------------------------------------------------


def test_splits_hold_real_shifted_token_sequences(datasets, registry):
    from tokenizers import Tokenizer

    assert datasets.source.ref == f"{TINY}:v1"
    assert datasets.source.blend_path == registry.resolve(TINY).file("blend")
    assert datasets.tokenizer == TokenIds(eod_id=EOD, vocab_size=VOCAB)  # from the artifact's metadata
    decoder = Tokenizer.from_file(str(TINY_TOKENIZER / "tokenizer.json"))
    text = corpus_text()
    for split, wanted in (("train", 256), ("valid", 16), ("test", 16)):
        dataset = datasets.split(split)
        assert wanted <= len(dataset) <= wanted + 4  # megatron rounds each of the 4 shards' share up
        sources, pieces = set(), 0
        for i in range(len(dataset)):
            sample = dataset[i]
            assert set(sample) == {"tokens", "labels", "loss_mask", "position_ids", "dataset_id"}  # no attention mask
            tokens, labels = sample["tokens"], sample["labels"]
            assert tokens.shape == labels.shape == sample["loss_mask"].shape == (SEQ,)
            assert tokens.dtype == labels.dtype == torch.int64
            assert torch.equal(tokens[1:], labels[:-1])  # seq_length + 1 tokens, shifted
            assert 0 <= int(tokens.min()) and int(tokens.max()) < VOCAB and int(labels.max()) < VOCAB
            assert torch.equal(sample["position_ids"], torch.arange(SEQ))
            assert torch.equal(sample["loss_mask"], torch.ones(SEQ))  # eod_mask_loss off, nothing padded
            sources.add(int(sample["dataset_id"]))
            # the tokens are the corpus: every stretch between EOD tokens decodes to text in it
            whole = torch.cat([tokens, labels[-1:]]).tolist()
            stretches = " ".join(map(str, whole)).split(f" {EOD} ") if i < 8 else []
            for stretch in stretches:
                ids = [int(x) for x in stretch.split()][1:-1]
                if len(ids) >= 8:
                    assert decoder.decode(ids) in text, (split, i)
                    pieces += 1
        assert sources <= set(range(4))
        if split == "train":
            assert sources == set(range(4))  # every shard of both datasets contributes
            assert pieces >= 8


def test_same_seed_same_samples_cache_or_not_and_another_seed_reorders(datasets, registry, tmp_path):
    again = build_datasets(config(tmp_path / "fresh"), registry=registry)  # a cold cache
    written = tree(tmp_path / "fresh" / "cache")
    cached = build_datasets(config(tmp_path / "fresh"), registry=registry)  # reads the cache just written
    assert tree(tmp_path / "fresh" / "cache") == written
    for split in ("train", "valid", "test"):
        n = len(datasets.split(split))
        assert rows(again.split(split), n) == rows(datasets.split(split), n), split
        assert rows(cached.split(split), n) == rows(datasets.split(split), n), split
    other = build_datasets(config(tmp_path / "seed7", seed=7), registry=registry)
    first = rows(datasets.train, 32)
    reordered = rows(other.train, 32)
    assert reordered != first
    assert len(set(reordered) & set(first)) < 16  # not a rotation of the same order


def test_nothing_is_written_into_the_artifact_or_its_data(registry, home, tmp_path):
    before = tree(home / "artifacts")
    cfg = config(tmp_path, seed=99)  # new indices: megatron must write them somewhere
    datasets = build_datasets(cfg, registry=registry)
    datasets.train[0]
    assert tree(home / "artifacts") == before
    written = sorted(p.name for p in Path(cfg.cache_dir).iterdir())
    assert any(name.endswith("GPTDataset-train-shuffle_index.npy") for name in written)
    assert any(name.endswith("BlendedDataset-train-dataset_index.npy") for name in written)
    assert registry.verify(f"{TINY}:latest").ok
    data_dir = Path(registry.resolve(TINY).metadata["data_dir"])
    artifact_dir = registry.resolve(TINY).path
    for inside in (artifact_dir / "cache", data_dir / "train" / "python-library" / "cache", data_dir):
        with pytest.raises(TrainingDataError, match=r"cache_dir .* is inside .*put the index cache outside the data"):
            build_datasets(config(tmp_path, cache_dir=str(inside)), registry=registry)
    assert tree(home / "artifacts") == before


def test_build_leaves_torch_distributed_as_it_found_it(registry, tmp_path, monkeypatch):
    import torch.distributed as dist

    assert not dist.is_initialized(), "an earlier test left a torch.distributed process group initialised"
    build_datasets(config(tmp_path / "a"), registry=registry)
    assert not dist.is_initialized()  # the temporary one-process group is gone
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        built = build_datasets(config(tmp_path / "b"), registry=registry)
        assert dist.is_initialized() and len(built.train) >= 256
    finally:
        dist.destroy_process_group()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(TrainingDataError, match="WORLD_SIZE is 2 but torch.distributed is not initialised"):
        build_datasets(config(tmp_path / "c"), registry=registry)


def test_tokenizer_folder_or_ids_must_match_the_artifact(datasets, registry, tmp_path):
    from megatron.core.tokenizers import MegatronTokenizer  # noqa: F401  (the folder loads through it)

    folder = build_datasets(config(tmp_path / "hf"), str(TINY_TOKENIZER), registry=registry)
    assert (folder.tokenizer.eod, folder.tokenizer.vocab_size, folder.tokenizer.pad) == (EOD, VOCAB, 1)
    assert rows(folder.train, 64) == rows(datasets.train, 64)  # the order never depends on the tokenizer
    with pytest.raises(
        TrainingDataError, match=r"has eod 5 and vocab 8192, but artifact .*:v1 was tokenized with eod 0"
    ):
        build_datasets(config(tmp_path / "bad"), TokenIds(eod_id=5, vocab_size=VOCAB), registry=registry)
    with pytest.raises(TrainingDataError, match="is not a local folder"):
        build_datasets(config(tmp_path / "bad"), "org/hub-tokenizer", registry=registry)


def test_eod_mask_loss_masks_exactly_the_eod_tokens(registry, tmp_path):
    masked = build_datasets(config(tmp_path, eod_mask_loss=True), registry=registry)
    eods = 0
    for i in range(64):
        sample = masked.train[i]
        assert torch.equal(sample["loss_mask"], (sample["tokens"] != EOD).float())
        eods += int((sample["tokens"] == EOD).sum())
    assert eods > 0


def test_blend_path_and_default_registry(registry, home, tmp_path, monkeypatch):
    blend = registry.resolve(TINY).file("blend")
    with pytest.raises(TrainingDataError, match="records no tokenizer eod_id/vocab_size; pass tokenizer="):
        build_datasets(config(tmp_path, artifact_ref=None, blend_path=str(blend)))
    by_path = build_datasets(config(tmp_path, artifact_ref=None, blend_path=str(blend)), TokenIds(EOD, VOCAB))
    assert by_path.source.ref is None
    monkeypatch.delenv("NEMOTRON_ARTIFACTS_ROOT", raising=False)
    monkeypatch.setenv("NEMOTRON_HOME", str(home))
    by_ref = build_datasets(config(tmp_path))  # the registry under $NEMOTRON_HOME
    assert rows(by_ref.train, 16) == rows(by_path.train, 16)


def test_missing_references_name_the_ref_and_what_exists(registry, tmp_path):
    with pytest.raises(
        ArtifactError, match=r"artifact_ref 'no-such-data:latest'.*artifacts there: .*nano3-pretrain-data-tiny"
    ):
        build_datasets(config(tmp_path, artifact_ref="no-such-data:latest"), registry=registry)
    with pytest.raises(ArtifactError, match=rf"artifact_ref '{TINY}:v9'.*versions of {TINY}: v1"):
        build_datasets(config(tmp_path, artifact_ref=f"{TINY}:v9"), registry=registry)
    with registry.staging("some-checkpoint") as staging:
        (staging.path / "ckpt").mkdir()
        registry.publish(
            staging,
            kind=ArtifactKind.MODEL_CHECKPOINT,
            lineage=Lineage(stage="test"),
            metadata={"step": 1},
            files={"checkpoint": "ckpt"},
        )
    with pytest.raises(
        ArtifactError,
        match=r"artifact_ref 'some-checkpoint:latest': some-checkpoint:latest \(some-checkpoint:v1\) is a "
        "model-checkpoint artifact, but this stage reads pretrain-data",
    ):
        build_datasets(config(tmp_path, artifact_ref="some-checkpoint:latest"), registry=registry)


def test_an_empty_split_is_an_error_only_when_requested(registry, tmp_path):
    assert json.loads(registry.resolve(NO_TEST).file("blend").read_text())["test"] is None
    built = build_datasets(config(tmp_path, artifact_ref=NO_TEST, test_iters=0), registry=registry)
    assert built.test is None and len(built.valid) >= 16 and len(built.train) >= 256
    with pytest.raises(
        TrainingDataError,
        match=rf"test_iters is 2 but split 'test' of artifact {NO_TEST}:v1 is empty; "
        r"set test_iters: 0",
    ):
        build_datasets(config(tmp_path, artifact_ref=NO_TEST), registry=registry)
    with pytest.raises(TrainingDataError, match="no dataset for this iterator"):
        MicroBatchIterator(built.test, 2, 0, 1, global_batch_size=8)
    with pytest.raises(TrainingDataError, match="are all 0; nothing to build"):
        build_datasets(config(tmp_path, train_iters=0, valid_iters=0, test_iters=0), registry=registry)
    broken = tmp_path / "broken" / "blend.json"  # a blend naming shards that are not there
    broken.parent.mkdir()
    broken.write_text(json.dumps({"train": [1.0, "train/gone/shard_00000"], "valid": None, "test": None}))
    with pytest.raises(
        TrainingDataError, match=r"lists .*/broken/train/gone/shard_00000.bin \(train\), which is missing"
    ):
        build_datasets(
            config(tmp_path, artifact_ref=None, blend_path=str(broken), valid_iters=0, test_iters=0),
            TokenIds(EOD, VOCAB),
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"artifact_ref": None}, "set exactly one of artifact_ref"),
        ({"blend_path": "blend.json"}, "set exactly one of artifact_ref"),
        (
            {"global_batch_size": 10, "micro_batch_size": 4},
            r"global_batch_size \(10\) must be a multiple of micro_batch_size \(4\)",
        ),
        ({"seq_length": 0}, "seq_length=0 must be a positive integer"),
        ({"valid_iters": -1}, "valid_iters=-1 must be an integer >= 0"),
        ({"cache_dir": ""}, "cache_dir is required"),
    ],
)
def test_config_errors_name_the_key(tmp_path, changes, message):
    with pytest.raises(TrainingDataError, match=message):
        config(tmp_path, **changes)


# -- micro-batches --------------------------------------------------------------------------------------


def take(iterator: MicroBatchIterator, steps: int) -> list[list[dict]]:
    """`steps` global batches of one rank: each a list of its micro-batches."""
    return [[next(iterator) for _ in range(iterator.micro_batches_per_step)] for _ in range(steps)]


def sample_rows(micro_batches: list[dict]) -> list[tuple[int, ...]]:
    return [tuple(row) for batch in micro_batches for row in batch["tokens"].tolist()]


def test_micro_batches_follow_the_dataset_order(datasets):
    iterator = MicroBatchIterator(datasets.train, 2, 0, 1, global_batch_size=8)
    assert iterator.micro_batches_per_step == 4
    batch = next(iterator)
    assert set(batch) == {"tokens", "labels", "loss_mask", "position_ids", "attention_mask"}
    assert batch["attention_mask"] is None
    for key in ("tokens", "labels", "loss_mask", "position_ids"):
        assert torch.equal(batch[key], torch.stack([datasets.train[0][key], datasets.train[1][key]]))
    assert iterator.consumed_samples == 2
    rest = [next(iterator) for _ in range(3)]
    assert sample_rows([batch, *rest]) == rows(datasets.train, 8)
    assert iterator.state_dict() == {"consumed_samples": 8}


def test_data_parallel_ranks_split_the_same_global_batches(datasets):
    steps = 6
    single = take(MicroBatchIterator(datasets.train, 2, 0, 1, global_batch_size=8), steps)
    ranks = [take(MicroBatchIterator(datasets.train, 2, r, 2, global_batch_size=8), steps) for r in (0, 1)]
    for step in range(steps):
        whole = sample_rows(single[step])
        parts = [sample_rows(ranks[r][step]) for r in (0, 1)]
        assert sorted(parts[0] + parts[1]) == sorted(whole)  # the same samples, split between ranks
        assert not set(parts[0]) & set(parts[1])
        assert parts[0] == whole[0:2] + whole[4:6] and parts[1] == whole[2:4] + whole[6:8]


def test_resume_continues_exactly_also_with_another_data_parallel_size(datasets):
    total, cut = 8, 3
    uninterrupted = take(MicroBatchIterator(datasets.train, 2, 0, 1, global_batch_size=8), total)
    first = MicroBatchIterator(datasets.train, 2, 0, 1, global_batch_size=8)
    take(first, cut)
    state = first.state_dict()
    assert state == {"consumed_samples": cut * 8}
    resumed = take(
        MicroBatchIterator(datasets.train, 2, 0, 1, state["consumed_samples"], global_batch_size=8), total - cut
    )
    assert [sample_rows(s) for s in resumed] == [sample_rows(s) for s in uninterrupted[cut:]]
    assert all(
        torch.equal(a["labels"], b["labels"])
        for x, y in zip(resumed, uninterrupted[cut:], strict=True)
        for a, b in zip(x, y, strict=True)
    )

    # dp 2 -> 1: the two ranks save the same position, one rank continues the same global sample sequence
    pair = [MicroBatchIterator(datasets.train, 2, r, 2, global_batch_size=8) for r in (0, 1)]
    for iterator in pair:
        take(iterator, cut)
    assert pair[0].state_dict() == pair[1].state_dict() == state
    alone = take(
        MicroBatchIterator(datasets.train, 2, 0, 1, pair[0].state_dict()["consumed_samples"], global_batch_size=8),
        total - cut,
    )
    assert [sample_rows(s) for s in alone] == [sample_rows(s) for s in uninterrupted[cut:]]
    # dp 1 -> 4 with micro-batch 1: the same global batches again
    four = [
        take(MicroBatchIterator(datasets.train, 1, r, 4, state["consumed_samples"], global_batch_size=8), total - cut)
        for r in range(4)
    ]
    for step in range(total - cut):
        assert sorted(row for r in range(4) for row in sample_rows(four[r][step])) == sorted(
            sample_rows(uninterrupted[cut + step])
        )


def test_the_iterator_ends_after_the_last_complete_global_batch(datasets):
    usable = len(datasets.train) // 8 * 8
    iterator = MicroBatchIterator(datasets.train, 4, 1, 2, usable - 16, global_batch_size=8)
    assert iterator.steps_left == 2
    assert len(list(iterator)) == 2
    assert iterator.consumed_samples == usable and iterator.steps_left == 0
    with pytest.raises(TrainingDataError, match=f"consumed_samples {usable + 8} is beyond the {usable} usable samples"):
        MicroBatchIterator(datasets.train, 4, 0, 2, usable + 8, global_batch_size=8)


def test_worker_processes_give_the_same_batches(datasets):
    inline = take(MicroBatchIterator(datasets.train, 2, 1, 2, 16, global_batch_size=8), 4)
    workers = take(MicroBatchIterator(datasets.train, 2, 1, 2, 16, global_batch_size=8, num_workers=2), 4)
    assert [sample_rows(s) for s in workers] == [sample_rows(s) for s in inline]


def test_positions_that_cannot_resume_are_refused(datasets):
    iterator = MicroBatchIterator(datasets.train, 2, 0, 2, global_batch_size=8)
    next(iterator)
    with pytest.raises(TrainingDataError, match=r"state_dict\(\) called 1 micro-batch\(es\) into a global batch"):
        iterator.state_dict()
    with pytest.raises(TrainingDataError, match="consumed_samples 4 is not a step boundary"):
        MicroBatchIterator(datasets.train, 2, 0, 2, 4, global_batch_size=8)
    with pytest.raises(
        TrainingDataError, match=r"must be a multiple of micro_batch_size x data_parallel_size \(2 x 3\)"
    ):
        MicroBatchIterator(datasets.train, 2, 0, 3, global_batch_size=8)
    with pytest.raises(TrainingDataError, match=r"data_parallel_rank 2 is outside 0..1"):
        MicroBatchIterator(datasets.train, 2, 2, 2, global_batch_size=8)
    assert BatchLayout(2, 8, 2).indices(8, 1) == range(10, 12)
