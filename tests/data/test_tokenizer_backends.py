"""gigatoken vs Hugging Face tokenizers: identical ids on the shipped corpus, fallback, specs in workers."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from nemotron.data.encoded_batch import EncodedBatch
from nemotron.data.errors import DataError
from nemotron.data.gigatoken_backend import GigatokenEncoder
from nemotron.data.tokenizer import TokenizerFallbackWarning, TokenizerSpec, load_tokenizer
from nemotron.data.tokenizer_check import TRICKY_TEXTS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"
TINY_CORPUS = sorted((REPO / "recipes/nano3/assets/corpus-tiny").glob("*.jsonl"))


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    texts = [json.loads(line)["text"] for path in TINY_CORPUS for line in path.read_text().splitlines() if line]
    assert len(texts) == 540
    return texts


@pytest.fixture(scope="module")
def hf():
    return load_tokenizer(str(TINY_TOKENIZER), backend="huggingface")


@pytest.fixture(scope="module")
def giga(corpus):
    return load_tokenizer(str(TINY_TOKENIZER), backend="gigatoken", check_texts=corpus[:20])


def copy_tokenizer(tmp_path: Path, **config_changes) -> Path:
    folder = tmp_path / "tokenizer"
    shutil.copytree(TINY_TOKENIZER, folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.update(config_changes)
    config_path.write_text(json.dumps(config))
    return folder


def test_identical_ids_on_every_shipped_document(corpus, hf, giga):
    assert giga.backend == "gigatoken" and hf.backend == "huggingface"
    want = hf.encode_batch(corpus)
    got = giga.encode_batch(corpus)
    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        assert w == g, f"document {i} differs"
    assert sum(map(len, want)) == 625_786  # recipes/nano3/assets/README.md
    arrays = giga.encode_batch_arrays(corpus)
    assert all(a.dtype == np.uint32 and a.tolist() == w for a, w in zip(arrays, want, strict=True))


def test_identical_ids_on_tricky_strings_and_special_tokens_in_text(hf, giga):
    texts = list(TRICKY_TEXTS) + ["a<|endoftext|>b", "<|pad|><|endoftext|>"]
    assert giga.encode_batch(texts) == hf.encode_batch(texts)
    # Special tokens written in the text are matched, as Hugging Face does with add_special_tokens=False.
    assert giga.encode_batch(["a<|endoftext|>b"])[0][1] == giga.eod_id


def test_flat_batch_appends_eod(corpus, hf, giga):
    flat = giga.encode_batch_flat(corpus[:5], append_eod=True)
    assert len(flat) == 5 and flat.ids.dtype == np.uint32
    assert [a.tolist() for a in flat.arrays()] == [ids + [hf.eod_id] for ids in hf.encode_batch(corpus[:5])]
    assert flat.lengths.tolist() == [len(ids) + 1 for ids in hf.encode_batch(corpus[:5])]


def test_encoded_batch_edge_cases():
    empty = EncodedBatch.from_lists([])
    assert len(empty) == 0 and empty.arrays() == [] and len(empty.with_suffix(7)) == 0
    batch = EncodedBatch.from_lists([[], [5, 6], []])
    assert batch.with_suffix(0).lists() == [[0], [5, 6, 0], [0]]
    assert batch.offsets.tolist() == [0, 0, 2, 2]


def test_auto_picks_gigatoken(corpus):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TokenizerFallbackWarning)
        tokenizer = load_tokenizer(str(TINY_TOKENIZER), check_texts=corpus[:50])
    assert tokenizer.backend == "gigatoken"
    assert tokenizer.fallback_reason is None
    assert tokenizer.tokenizer_file == str((TINY_TOKENIZER / "tokenizer.json").resolve())


@pytest.mark.parametrize("method", ["encode_flat", "encode_lists"])
def test_perturbed_gigatoken_ids_fall_back_to_hugging_face(corpus, monkeypatch, method):
    real = getattr(GigatokenEncoder, method)

    def off_by_one_in_document_3(self, texts):
        out = real(self, texts)
        if method == "encode_flat" and len(out) > 3 and out.lengths[3]:
            out.ids[out.offsets[3]] += 1
        elif method == "encode_lists" and len(out) > 3 and out[3]:
            out[3][0] += 1
        return out

    monkeypatch.setattr(GigatokenEncoder, method, off_by_one_in_document_3)
    with pytest.warns(TokenizerFallbackWarning, match="ids differ on check text #3"):
        tokenizer = load_tokenizer(str(TINY_TOKENIZER), check_texts=corpus[:10])
    assert tokenizer.backend == "huggingface"
    assert "ids differ on check text #3" in tokenizer.fallback_reason
    assert tokenizer.identity()["backend"] == "huggingface"
    with pytest.raises(DataError, match="cannot use backend 'gigatoken': gigatoken ids differ"):
        load_tokenizer(str(TINY_TOKENIZER), backend="gigatoken", check_texts=corpus[:10])


def test_split_special_tokens_in_hugging_face_config_falls_back(tmp_path):
    # transformers then encodes "<|endoftext|>" in text as plain characters; gigatoken would not.
    folder = copy_tokenizer(tmp_path, split_special_tokens=True)
    with pytest.warns(TokenizerFallbackWarning, match="endoftext"):
        tokenizer = load_tokenizer(str(folder))
    assert tokenizer.backend == "huggingface" and "ids differ" in tokenizer.fallback_reason


def test_token_added_outside_tokenizer_json_falls_back(tmp_path):
    folder = copy_tokenizer(tmp_path, additional_special_tokens=["<|extra|>"])
    with pytest.warns(TokenizerFallbackWarning, match="vocab size differs"):
        tokenizer = load_tokenizer(str(folder))
    assert tokenizer.backend == "huggingface"
    assert tokenizer.encode_batch(["a<|extra|>b"]) == [[68, 8192, 69]]


def test_tokenizer_gigatoken_cannot_load_falls_back(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    wordpiece = Tokenizer(models.WordPiece({"[UNK]": 0, "[SEP]": 1, "hello": 2, "world": 3}, unk_token="[UNK]"))
    wordpiece.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path / "wordpiece"
    PreTrainedTokenizerFast(tokenizer_object=wordpiece, eos_token="[SEP]", unk_token="[UNK]").save_pretrained(folder)
    with pytest.warns(TokenizerFallbackWarning, match="gigatoken cannot load"):
        tokenizer = load_tokenizer(str(folder))
    assert tokenizer.backend == "huggingface" and "WordPiece" in tokenizer.fallback_reason
    assert tokenizer.encode_batch(["hello world"]) == [[2, 3]]
    with pytest.raises(DataError, match="cannot use backend 'gigatoken'"):
        load_tokenizer(str(folder), backend="gigatoken")


def test_hugging_face_backend_is_the_reference(corpus, hf):
    assert hf.fallback_reason is None and hf.hf_tokenizer is not None
    direct = hf.hf_tokenizer(corpus[:20], add_special_tokens=False)["input_ids"]
    assert hf.encode_batch(corpus[:20]) == direct
    assert [a.tolist() for a in hf.encode_batch_arrays(corpus[:20])] == direct


def test_identity_records_backend(hf, giga):
    assert giga.identity() == {
        "name_or_path": str(TINY_TOKENIZER),
        "vocab_size": 8192,
        "eod_id": 0,
        "backend": "gigatoken",
    }
    assert hf.identity()["backend"] == "huggingface"


def test_bad_arguments_name_the_fix():
    with pytest.raises(DataError, match="unknown tokenizer backend 'fast'.*auto, gigatoken, huggingface"):
        load_tokenizer(str(TINY_TOKENIZER), backend="fast")
    with pytest.raises(DataError, match="threads must be >= 1"):
        load_tokenizer(str(TINY_TOKENIZER), threads=0)


def test_spec_round_trips_through_pickle(corpus, giga, hf):
    spec = giga.spec()
    assert spec == TokenizerSpec(str(TINY_TOKENIZER), "gigatoken", 1, giga.tokenizer_file, 0, 8192)
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec
    loaded = again.load()
    assert loaded.backend == "gigatoken" and loaded.threads == 1 and loaded.hf_tokenizer is None
    assert loaded.encode_batch(corpus[:30]) == hf.encode_batch(corpus[:30])
    assert pickle.loads(pickle.dumps(hf)).encode_batch(corpus[:5]) == hf.encode_batch(corpus[:5])


def test_spec_loads_in_spawned_worker_with_same_ids(corpus, giga, hf):
    worker_tokenizer = giga.spec(threads=1).load()  # pickles as its spec: the worker rebuilds it
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        ids = pool.apply(worker_tokenizer.encode_batch, (corpus,))
        threads = pool.apply(getattr, (worker_tokenizer, "threads"))
        backend = pool.apply(getattr, (worker_tokenizer, "backend"))
    assert (backend, threads) == ("gigatoken", 1)
    assert ids == hf.encode_batch(corpus)
