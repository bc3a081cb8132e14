"""Long documents are tokenized in pieces: the ids of the whole text, the same shard bytes, bounded memory."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from nemotron.data.indexed_writer import IndexedWriter
from nemotron.data.long_text import DEFAULT_PIECE_CHARS, LongTextSplitter, LongTextWarning, splitter_for
from nemotron.data.tokenizer import load_tokenizer
from nemotron.stages.data_prep_config import DataPrepPretrainConfig, TokenizerSection

REPO = Path(__file__).resolve().parents[2]
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"
TINY_JSON = TINY_TOKENIZER / "tokenizer.json"
CORPUS = REPO / "recipes/nano3/assets/corpus-tiny"
ALL_TRAIN = {"valid_fraction": 0.0, "test_fraction": 0.0, "seed": 1}
PIECE = 300  # characters: a few dozen pieces per text below

warnings.filterwarnings("ignore", message="Transformer Engine and Apex are not installed")


def corpus_texts() -> list[str]:
    return [
        json.loads(line)["text"]
        for path in sorted(CORPUS.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def long_texts() -> dict[str, str]:
    """Texts of ~10-40k characters, each of another kind."""
    rng = random.Random(7)
    code = "\n".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "src/nemotron/data").glob("*.py")))
    unicode_bits = ["é", "e\u0301", "日本語", "한국어", " ", "\U0001f600", "\U0001f468\u200d\U0001f469", "Ωμέγα"]
    unicode_bits += ["²", "٣", "\u00a0", "\u3000", "_"]
    whitespace_bits = [" ", "  ", "\n", "\t", " \n ", "\r\n", "\n\n\n", "x", "ab", "1", ".", "    "]
    return {
        "prose": "\n\n".join(corpus_texts()[:12]),
        "code": code[:40_000],
        "whitespace runs": "".join(rng.choice(whitespace_bits) for _ in range(8_000)),
        "unicode": "".join(rng.choice(unicode_bits) for _ in range(8_000)),
        "base64, no spaces": base64.b64encode(rng.randbytes(15_000)).decode(),
        "numbers": " ".join(f"{rng.randint(0, 10**9)}{rng.choice(['', ',', '.5', 'e3', 'km'])}" for _ in range(3_000)),
        "special tokens in text": " ".join(
            rng.choice(["word", "<|endoftext|>", "x<|pad|>y", "7"]) for _ in range(4000)
        ),
    }


@pytest.fixture(scope="module")
def backend() -> Tokenizer:
    return Tokenizer.from_file(str(TINY_JSON))


def encode(backend: Tokenizer, texts: list[str]) -> list[int]:
    return [i for e in backend.encode_batch(texts, add_special_tokens=False) for i in e.ids]


def with_pre_tokenizer(pre_tokenizer: dict | None, normalizer: dict | None = None) -> Tokenizer:
    """The tiny tokenizer's vocabulary behind another pre-tokenizer (and normalizer)."""
    config = json.loads(TINY_JSON.read_text())
    config["pre_tokenizer"], config["normalizer"] = pre_tokenizer, normalizer
    return Tokenizer.from_str(json.dumps(config))


def split_then_bytes(pattern: str) -> dict:
    """A Split regex then byte-level symbols: how Llama 3, Qwen and Mistral tokenizers pre-tokenize."""
    return {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    }


# The pre-tokenizer regexes of Llama 3, Qwen 2 and Mistral's tekken tokenizers
CONTRACTIONS, WORD = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)", r"[^\r\n\p{L}\p{N}]?\p{L}+"
SPACES = r"|\s*[\r\n]+|\s+(?!\S)|\s+"
UPPER, LOWER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
PRE_TOKENIZERS = {
    "llama3": split_then_bytes(rf"{CONTRACTIONS}|{WORD}|\p{{N}}{{1,3}}| ?[^\s\p{{L}}\p{{N}}]+[\r\n]*{SPACES}"),
    "qwen2": split_then_bytes(rf"{CONTRACTIONS}|{WORD}|\p{{N}}| ?[^\s\p{{L}}\p{{N}}]+[\r\n]*{SPACES}"),
    "mistral tekken": split_then_bytes(
        rf"[^\r\n\p{{L}}\p{{N}}]?{UPPER}*{LOWER}+|[^\r\n\p{{L}}\p{{N}}]?{UPPER}+{LOWER}*|\p{{N}}"
        rf"| ?[^\s\p{{L}}\p{{N}}]+[\r\n/]*{SPACES}"
    ),
    "byte-level with prefix space": {
        "type": "ByteLevel",
        "add_prefix_space": True,
        "trim_offsets": True,
        "use_regex": True,
    },
    "whitespace": {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Whitespace"},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    },
    "metaspace": {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    },
}


# -- the splitter ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(long_texts()))
def test_pieces_give_the_ids_of_the_whole_text(backend, kind):
    text = long_texts()[kind]
    splitter = LongTextSplitter(backend, PIECE)
    assert splitter.reason is None
    pieces = list(splitter.pieces(text))
    assert len(pieces) >= 20 and max(map(len, pieces)) <= PIECE and "".join(pieces) == text
    assert splitter.hard_cuts == 0
    assert encode(backend, pieces) == backend.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("family", list(PRE_TOKENIZERS))
def test_pieces_give_the_ids_of_the_whole_text_with_other_pre_tokenizers(family):
    backend = with_pre_tokenizer(PRE_TOKENIZERS[family])
    exact = 0
    for kind, text in long_texts().items():
        splitter = LongTextSplitter(backend, PIECE)
        assert splitter.reason is None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LongTextWarning)
            pieces = list(splitter.pieces(text))
        assert "".join(pieces) == text and len(pieces) >= 20
        if splitter.hard_cuts == 0:  # a stretch without a safe cut (base64 for Metaspace) is cut anyway
            assert encode(backend, pieces) == backend.encode(text, add_special_tokens=False).ids, kind
            exact += 1
        else:
            assert kind == "base64, no spaces" and family in ("metaspace", "byte-level with prefix space")
    assert exact >= 6


def test_the_data_prep_tokenizer_gives_the_same_ids_in_pieces_with_both_backends(backend):
    hf = load_tokenizer(str(TINY_TOKENIZER), backend="huggingface")
    in_worker = load_tokenizer(str(TINY_TOKENIZER), backend="gigatoken").spec(threads=1).load()
    assert in_worker.backend == "gigatoken" and in_worker.hf_tokenizer is None  # the splitter reads tokenizer.json
    text = "\n".join(long_texts().values())
    whole = backend.encode(text, add_special_tokens=False).ids
    for tokenizer in (hf, in_worker):
        pieces = list(splitter_for(tokenizer, 2_000).pieces(text))
        assert len(pieces) > 50
        assert [int(i) for p in pieces for i in tokenizer.encode_batch_flat([p]).ids] == whole


@pytest.mark.parametrize(
    ("pre_tokenizer", "normalizer", "reason"),
    [
        (None, None, "no pre-tokenizer"),
        ({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}, None, "changed"),
        (PRE_TOKENIZERS["llama3"], {"type": "NFC"}, "normalizer"),
        (PRE_TOKENIZERS["llama3"], {"type": "Lowercase"}, "normalizer"),
    ],
)
def test_tokenizers_that_could_join_across_a_cut_never_cut(pre_tokenizer, normalizer, reason):
    backend = with_pre_tokenizer(pre_tokenizer, normalizer)
    splitter = LongTextSplitter(backend, PIECE)
    assert reason in (splitter.reason or "")
    text = long_texts()["prose"]
    assert list(splitter.pieces(text)) == [text]


def test_a_splitter_that_cannot_cut_warns():
    class NoBackend:
        name_or_path, hf_tokenizer, tokenizer_file = "slow", object(), None

    with pytest.warns(LongTextWarning, match="tokenized whole, so memory grows with them: .*slow"):
        splitter = splitter_for(NoBackend(), 1000)  # type: ignore[arg-type]
    assert list(splitter.pieces("x" * 5000)) == ["x" * 5000]


def test_a_stretch_without_a_safe_cut_is_cut_at_the_limit_and_still_decodes(backend):
    """One letter repeated is a single pre-token: it is cut anyway (bounded), and the ids decode to the text."""
    text = "a" * 990 + "<|endoftext|>" + "b" * 3_000 + " end <|endoftext|>"
    splitter = LongTextSplitter(backend, 1_000)
    with pytest.warns(LongTextWarning, match="without a safe cut"):
        pieces = list(splitter.pieces(text))
    assert "".join(pieces) == text and max(map(len, pieces)) <= 1_000
    assert splitter.hard_cuts == 4
    assert pieces[0] == "a" * 990  # the cut at 1,000 would split <|endoftext|>: it moves before it
    ids = encode(backend, pieces)
    assert ids.count(0) == 2  # both <|endoftext|> stayed whole
    assert backend.decode(ids, skip_special_tokens=False) == text


def test_a_safe_cut_is_looked_for_only_near_the_end_of_a_piece(backend):
    """The search stops SEARCH characters before the limit: its time per piece is bounded."""
    from nemotron.data.long_text import SEARCH

    text = "word " + "a" * (SEARCH + 10_000)
    splitter = LongTextSplitter(backend, SEARCH + 5_000)
    with pytest.warns(LongTextWarning):
        pieces = list(splitter.pieces(text))
    assert [len(p) for p in pieces] == [SEARCH + 5_000, 5_005] and splitter.hard_cuts == 1
    assert list(LongTextSplitter(backend, SEARCH).pieces(text))[0] == "word"  # within reach: a safe cut


def test_short_texts_are_one_piece_and_not_copied(backend):
    text = "a short document " * 10
    assert next(iter(LongTextSplitter(backend, len(text)).pieces(text))) is text


# -- writing a document in parts ------------------------------------------------------------------


def test_a_document_written_in_parts_has_the_bytes_of_one_written_whole(tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 8192, size=n, dtype=np.uint32) for n in (5, 1000, 0, 77)]
    whole, parts = IndexedWriter(tmp_path / "a.bin", np.dtype(np.uint16)), IndexedWriter(tmp_path / "b.bin", np.uint16)
    for doc in docs:
        whole.add_document(doc)
        parts.start_document()
        for chunk in np.array_split(doc, 7):
            parts.extend(chunk)
        assert parts.end_document() == len(doc)
    whole.finalize(tmp_path / "a.idx")
    parts.finalize(tmp_path / "b.idx")
    for suffix in ("bin", "idx"):
        assert (tmp_path / f"a.{suffix}").read_bytes() == (tmp_path / f"b.{suffix}").read_bytes()


def test_parts_out_of_order_are_refused(tmp_path):
    writer = IndexedWriter(tmp_path / "x.bin", np.dtype(np.uint16))
    with pytest.raises(RuntimeError, match="start_document"):
        writer.extend(np.arange(3))
    with pytest.raises(RuntimeError, match="without start_document"):
        writer.end_document()
    writer.start_document()
    with pytest.raises(RuntimeError, match="not ended"):
        writer.add_document(np.arange(3))
    with pytest.raises(RuntimeError, match="not ended"):
        writer.finalize(tmp_path / "x.idx")


# -- through the stage ----------------------------------------------------------------------------


def write_blend(root: Path, texts: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (root / "blend.json").write_text(json.dumps({"datasets": [{"name": "docs", "path": "docs.jsonl", "weight": 1.0}]}))
    return root / "blend.json"


@pytest.mark.integration
@pytest.mark.parametrize("max_doc_tokens", [None, 6_000])
def test_shard_bytes_do_not_depend_on_the_piece_size(
    tmp_path, stage_config, prep_stage, artifact_metadata, monkeypatch, backend, max_doc_tokens
):
    from nemotron.data import long_text

    texts = long_texts()
    short = corpus_texts()[:6]
    documents = [short[0], texts["prose"], short[1], short[2], texts["code"], texts["base64, no spaces"], *short[3:]]
    blend = write_blend(tmp_path / "in", documents)
    pieces: list[str] = []
    real_pieces = long_text.LongTextSplitter.pieces

    def counted(self, text):
        for piece in real_pieces(self, text):
            pieces.append(piece)
            yield piece

    monkeypatch.setattr(long_text.LongTextSplitter, "pieces", counted)
    shards = {}
    for piece_chars in (1_000, 10**9):
        name = f"p{piece_chars}"
        config = stage_config(
            tmp_path / f"{name}.yaml",
            blend,
            tmp_path / name / "data",
            num_shards=1,
            split=ALL_TRAIN,
            tokenize_piece_chars=piece_chars,
            max_doc_tokens=max_doc_tokens,
        )
        prep_stage(config, tmp_path / name / "registry")
        shards[piece_chars] = {
            p.relative_to(tmp_path / name / "data").as_posix(): p.read_bytes()
            for p in sorted((tmp_path / name / "data").rglob("*"))
            if p.suffix in (".bin", ".idx")
        }
        metadata = artifact_metadata(tmp_path / name / "registry", "test-data")
        shards[piece_chars]["metadata"] = json.dumps(
            {k: metadata[k] for k in ("splits", "settings_hash", "documents_truncated")}, sort_keys=True
        ).encode()
        if piece_chars == 1_000:
            assert len(pieces) > 50  # the long documents went through the pieces
    assert shards[1_000] == shards[10**9]

    from megatron.core.datasets.indexed_dataset import IndexedDataset

    [prefix] = {p.removesuffix(".bin") for p in shards[1_000] if p.endswith(".bin")}
    written = IndexedDataset(str(tmp_path / "p1000" / "data" / prefix))
    want = [backend.encode(t, add_special_tokens=False).ids[:max_doc_tokens] + [0] for t in documents]
    assert [written[i].tolist() for i in range(len(written))] == want


def test_the_piece_size_is_range_checked_and_has_a_default():
    config = DataPrepPretrainConfig(blend_path="b.json", tokenizer=TokenizerSection("t"))
    assert config.tokenize_piece_chars == DEFAULT_PIECE_CHARS
    with pytest.raises(ValueError, match="key 'tokenize_piece_chars' must be >= 1000, got 10"):
        DataPrepPretrainConfig(blend_path="b.json", tokenizer=TokenizerSection("t"), tokenize_piece_chars=10)


# -- memory ---------------------------------------------------------------------------------------

MEASURE = r"""
import json, re, sys, tempfile
from pathlib import Path
import numpy as np
from tokenizers import Tokenizer
from nemotron.data.blend_spec import load_blend_spec
from nemotron.data.encoded_batch import EncodedBatch
from nemotron.data.shard_plan import plan_work
from nemotron.data.shard_worker import ShardSettings, process_item
from nemotron.data.splits import SplitFractions
from nemotron.data.tokenizer import TextTokenizer

tokenizer_json, piece_chars, chars = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def peak_mb():  # this process's own peak RSS (ru_maxrss would include the parent's from before exec)
    return int(re.search(r"VmHWM:\s*(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024

backend = Tokenizer.from_file(tokenizer_json)

class Encoder:  # the Hugging Face backend's memory (ids, offsets, tokens per token) without importing transformers
    def encode_flat(self, texts):
        return EncodedBatch.from_lists([e.ids for e in backend.encode_batch(texts, add_special_tokens=False)])

tokenizer = TextTokenizer("tiny", None, 0, 8192, tokenizer_file=tokenizer_json, _encoder=Encoder())
root = Path(tempfile.mkdtemp())
words = " ".join(f"w{i % 977}x{i % 13} and some prose, 12.5%;" for i in range(20_000))
(root / "docs.jsonl").write_text(json.dumps({"text": (words * (chars // len(words) + 1))[:chars]}) + "\n")
(root / "blend.json").write_text(json.dumps({"datasets": [{"name": "docs", "path": "docs.jsonl", "weight": 1.0}]}))
blend = load_blend_spec(root / "blend.json")
[item] = plan_work(blend, 1)
settings = ShardSettings(SplitFractions(0.0, 0.0, 1), True, 0, None, None, 16, "h", piece_chars=piece_chars)
before = peak_mb()
receipt = process_item(item, blend.datasets[0], settings, tokenizer, root / "data", np.dtype(np.uint16))
print(json.dumps({"growth_mb": peak_mb() - before, "tokens": receipt.splits["train"].tokens}))
"""


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak RSS from /proc (Linux)")
def test_memory_of_a_long_document_is_bounded_by_the_piece_size():
    """Peak RSS growth while a 2.5 MB document is tokenized (HF tokenizers): in 50k-character pieces vs whole."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    runs = {
        piece_chars: subprocess.Popen(
            [sys.executable, "-c", MEASURE, str(TINY_JSON), str(piece_chars), "2500000"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for piece_chars in (50_000, 10**9)
    }
    results = {}
    for piece_chars, proc in runs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        results[piece_chars] = json.loads(out.strip().splitlines()[-1])
    assert results[50_000]["tokens"] == results[10**9]["tokens"]
    assert results[10**9]["growth_mb"] > 250, results  # whole: hundreds of bytes per token
    assert results[50_000]["growth_mb"] < 100, results
