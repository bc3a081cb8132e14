"""Build the tiny English corpus and byte-level BPE tokenizer shipped with the nano3 "tiny" recipe."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "recipes" / "nano3" / "assets"
DEB_PACKAGE = "python3.11-doc"

TUTORIAL_DIRS = ("tutorial", "howto", "faq")
LIBRARY_DIR = "library"
LIBRARY_BUDGET_BYTES = 1_600_000
MIN_LIBRARY_PAGE_CHARS = 3_000
MIN_DOC_CHARS = 1_500
MAX_DOC_CHARS = 6_000
MIN_PROSE_RATIO = 0.45

VOCAB_SIZE = 8192
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
SPLIT_PATTERN = (  # Qwen2's: GPT-4's, but every digit its own piece
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# ChatML turn markers of the nano3 chat template: one token each, so a turn's end is one exact token
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")
MODEL_MAX_LENGTH = 4096

# Directives dropped together with their indented body.
DROP_DIRECTIVES = {
    "index",
    "module",
    "moduleauthor",
    "sectionauthor",
    "currentmodule",
    "toctree",
    "testsetup",
    "testcleanup",
    "tabularcolumns",
    "include",
    "literalinclude",
    "highlight",
    "contents",
    "image",
    "figure",
    "list-table",
    "csv-table",
    "table",
    "productionlist",
    "audit-event",
    "audit-event-table",
    "raw",
    "only",
    "program",
    "opcode",
    "pdbcommand",
    "cmdoption",
    "envvar",
    "option",
}
# Directives whose line becomes a short English label; the body is kept.
LABEL_DIRECTIVES = {
    "note": "Note:",
    "warning": "Warning:",
    "seealso": "See also:",
    "important": "Important:",
    "caution": "Caution:",
    "hint": "Hint:",
    "tip": "Tip:",
    "impl-detail": "CPython implementation detail:",
    "availability": "Availability: {arg}.",
    "versionadded": "New in version {arg}.",
    "versionchanged": "Changed in version {arg}.",
    "deprecated": "Deprecated since version {arg}.",
    "deprecated-removed": "Deprecated since version {arg}.",
    "topic": "{arg}",
    "sidebar": "{arg}",
    "rubric": "{arg}",
}
# Object descriptions: the directive line becomes the signature.
SIGNATURE_PREFIX = {
    "class": "class ",
    "exception": "exception ",
    "decorator": "@",
    "coroutinefunction": "coroutine ",
    "coroutinemethod": "coroutine ",
    "classmethod": "classmethod ",
    "staticmethod": "staticmethod ",
    "abstractmethod": "abstractmethod ",
}
SIGNATURE_DIRECTIVES = set(SIGNATURE_PREFIX) | {
    "function",
    "method",
    "attribute",
    "data",
    "describe",
    "object",
    "awaitablefunction",
    "awaitablemethod",
}

HEADING_MARK = "\x00"
DIRECTIVE_RE = re.compile(r"^(\s*)\.\.\s+([\w:-]+)::\s*(.*)$")
EXPLICIT_MARKUP_RE = re.compile(r"^(\s*)\.\.(\s|$)")
FIELD_RE = re.compile(r"^:[\w ]+:(\s.*)?$")
OPTION_RE = re.compile(r"^\s+:[\w -]+:(\s.*)?$")
UNDERLINE_RE = re.compile(r"^([=\-~^*#\"'+`:.])\1{2,}\s*$")
FUNC_ROLES = {"func", "meth", "c:func", "c:macro"}


@dataclass(frozen=True)
class Doc:
    """One corpus document: a whole page or a few consecutive sections of it."""

    id: str
    text: str
    source: str


def indent_of(line: str) -> int:
    """Number of leading spaces of a line."""
    return len(line) - len(line.lstrip(" "))


def skip_block(lines: list[str], start: int, base_indent: int) -> int:
    """Index of the first line after the block whose body is indented past base_indent."""
    i = start
    while i < len(lines) and (not lines[i].strip() or indent_of(lines[i]) > base_indent):
        i += 1
    return i


def skip_options(lines: list[str], start: int) -> int:
    """Index of the first line after a directive's ':option:' lines."""
    i = start
    while i < len(lines) and OPTION_RE.match(lines[i]):
        i += 1
    return i


def convert_role(match: re.Match) -> str:
    """Render one interpreted-text role (:role:`target`) the way Sphinx would show it."""
    role, body = match.group(1), match.group(2)
    titled = re.match(r"^(.*?)\s*<([^<>]*)>$", body, re.S)
    if titled and titled.group(1):
        body = titled.group(1)
    elif body.startswith("~"):
        body = body[1:].rsplit(".", 1)[-1]
    body = body.lstrip("!")
    if role == "rfc":
        return f"RFC {body}"
    if role == "pep":
        return f"PEP {body}"
    if role in {"term", "ref", "doc", "dfn", "abbr", "source", "manpage", "kbd", "menuselection", "guilabel"}:
        return body
    if role in FUNC_ROLES and not body.endswith(")"):
        body += "()"
    return f"`{body}`"


def convert_inline(text: str) -> str:
    """Replace inline reST markup with plain-text equivalents (spans may wrap, not cross paragraphs)."""
    span = r"(?:[^`\n]|\n(?![ \t]*\n))"
    text = re.sub(rf"`({span}+?)\s*<{span}+?>`__?", r"\1", text)
    text = re.sub(rf"(?<![^\s(\[\"'/])`([^`\s]{span}*?)`__?(?!\w)", r"\1", text)
    text = re.sub(rf":([\w:+-]+):`({span}+?)`", convert_role, text)
    text = re.sub(rf"``({span}+?)``", r"`\1`", text)
    text = re.sub(r"\s?\[(#[\w-]*|\d+)\]_", "", text)
    text = re.sub(r"\|(release|version)\|", "3.11", text)
    text = text.replace(" --- ", " \u2014 ").replace("\\ ", "")
    return re.sub(r"\\([*_`|\\])", r"\1", text)


def is_table_line(line: str) -> bool:
    """True for grid-table rows/borders and simple-table borders."""
    s = line.strip()
    if s.startswith(("+-", "+=")):
        return True
    if len(s) > 1 and s.startswith("|") and s.endswith("|"):
        return True
    return bool(re.fullmatch(r"=+( +=+)+", s))


def directive_line(name: str, arg: str, indent: str, has_body: bool) -> str | None:
    """Replacement text for a kept directive's first line (None: no line)."""
    if name.startswith(("version", "deprecated")):
        version, _, rest = arg.strip().partition(" ")
        if name == "deprecated-removed":
            rest = ""
        label = LABEL_DIRECTIVES[name].format(arg=version).rstrip(".")
        return indent + label + (f": {rest.strip()}" if rest.strip() else ":" if has_body else ".")
    if name in LABEL_DIRECTIVES:
        label = LABEL_DIRECTIVES[name].format(arg=arg.strip())
        return indent + label if label.strip(" .:") else None
    if name in SIGNATURE_DIRECTIVES and arg:
        prefix = indent + SIGNATURE_PREFIX.get(name, "")
        return "\n".join(prefix + sig.strip() for sig in arg.strip().splitlines())
    return None


def directive_arg(lines: list[str], i: int, arg: str, multi: bool) -> tuple[str, int]:
    """A directive argument with continuation lines joined; returns it and the next index.

    Backslash-continued lines are joined; with multi (object descriptions), further indented
    lines up to the first option or blank line are extra signatures, one per line.
    """
    i += 1
    while arg.rstrip().endswith("\\") and i < len(lines):
        arg = arg.rstrip()[:-1].rstrip() + " " + lines[i].strip()
        i += 1
    while multi and i < len(lines) and lines[i].strip() and indent_of(lines[i]) > 0 and not OPTION_RE.match(lines[i]):
        arg += "\n" + lines[i].strip()
        i += 1
    return arg, i


def has_body(lines: list[str], i: int, base_indent: int) -> bool:
    """True when the first non-blank line from i is indented past base_indent."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i < len(lines) and indent_of(lines[i]) > base_indent


def heading_at(lines: list[str], i: int) -> int:
    """Lines spanned by a (possibly overlined) section title starting at i, else 0."""
    line = lines[i]
    if UNDERLINE_RE.match(line) and i + 2 < len(lines):
        title, under = lines[i + 1], lines[i + 2]
        if title.strip() and under.strip() == line.strip():
            return 3
    if i + 1 < len(lines) and line.strip() and indent_of(line) == 0:
        under = lines[i + 1]
        if UNDERLINE_RE.match(under) and len(under.rstrip()) >= len(line.rstrip()):
            return 2
    return 0


def clean_rst(raw: str) -> str:
    """Turn one reST page into plain prose; section titles are prefixed with HEADING_MARK."""
    lines = raw.replace("\t", "    ").splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        span = heading_at(lines, i)
        if span:
            title = lines[i + 1] if span == 3 else line
            out += ["", HEADING_MARK + title.strip(), ""]
            i += span
            continue
        directive = DIRECTIVE_RE.match(line)
        if directive:
            indent, name, arg = directive.groups()
            name = name.split(":")[-1]
            if name in DROP_DIRECTIVES:
                i = skip_block(lines, i + 1, len(indent))
                continue
            arg, i = directive_arg(lines, i, arg, name in SIGNATURE_DIRECTIVES)
            i = skip_options(lines, i)
            replacement = directive_line(name, arg, indent, has_body(lines, i, len(indent)))
            if replacement is not None:
                out.append(replacement)
            continue
        if EXPLICIT_MARKUP_RE.match(line):
            i = skip_block(lines, i + 1, indent_of(line))
            continue
        if is_table_line(line) or UNDERLINE_RE.match(line) or FIELD_RE.match(line):
            i += 1
            continue
        stripped = line.rstrip()
        if stripped.strip() == "::":
            i += 1
            continue
        if stripped.endswith("::"):
            stripped = stripped[:-2].rstrip() + (":" if not stripped[:-2].endswith(" ") else "")
        out.append(stripped)
        i += 1
    text = convert_inline("\n".join(out))
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def split_sections(text: str) -> list[str]:
    """Split cleaned text into chunks that each start at a section title."""
    parts = re.split(r"(?m)^(?=" + HEADING_MARK + ")", text)
    return [p for p in parts if p.strip()]


def can_start_chunk(para: str, prev: str) -> bool:
    """True when para may open a new chunk: not code and not nested deeper than its predecessor."""
    first = para.lstrip("\n")
    if not first or first.lstrip().startswith((">>>", "...")) or prev.rstrip().endswith(":"):
        return False
    return indent_of(first) <= indent_of(prev.lstrip("\n"))


def split_paragraphs(section: str, max_chars: int) -> list[str]:
    """Break an over-long section at paragraph boundaries into pieces of about max_chars."""
    pieces, current, prev = [], "", ""
    for para in section.split("\n\n"):
        if current and len(current) + len(para) + 2 > max_chars and can_start_chunk(para, prev):
            pieces.append(current)
            current = para
        else:
            current = f"{current}\n\n{para}" if current else para
        prev = para
    if current:
        pieces.append(current)
    return pieces


def chunk_page(text: str, min_chars: int = MIN_DOC_CHARS, max_chars: int = MAX_DOC_CHARS) -> list[str]:
    """Group consecutive sections of a page into documents of roughly min..max chars."""
    pieces = [p for s in split_sections(text) for p in split_paragraphs(s, max_chars)]
    chunks, current = [], ""
    for piece in pieces:
        if current and len(current) >= min_chars and len(current) + len(piece) > max_chars:
            chunks.append(current)
            current = piece
        else:
            current = f"{current.rstrip()}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    if len(chunks) > 1 and len(chunks[-1]) < min_chars // 2:
        last = chunks.pop()
        chunks[-1] = f"{chunks[-1].rstrip()}\n\n{last}"
    return [c.replace(HEADING_MARK, "").strip("\n").rstrip() + "\n" for c in chunks]


def prose_ratio(text: str) -> float:
    """Share of characters on lines that read like English sentences (not code or tables)."""
    prose = 0
    for line in text.splitlines():
        s = line.strip()
        words = re.findall(r"[A-Za-z]{2,}", s)
        is_code = s.startswith((">>>", "...", "$", "#"))
        if len(words) >= 5 and not is_code and sum(map(len, words)) > 0.6 * len(s):
            prose += len(s)
    total = sum(len(line.strip()) for line in text.splitlines())
    return prose / total if total else 0.0


def page_docs(sources: Path, path: Path) -> list[Doc]:
    """Cleaned, chunked, prose-filtered documents for one doc page."""
    rel = path.relative_to(sources).as_posix()
    stem = rel.removesuffix(".rst.txt").removesuffix(".txt")
    chunks = chunk_page(clean_rst(path.read_text(encoding="utf-8")))
    kept = [c for c in chunks if prose_ratio(c) >= MIN_PROSE_RATIO and len(c) >= 200]
    return [Doc(id=f"{stem}#{n}", text=c, source=rel) for n, c in enumerate(kept)]


def doc_pages(sources: Path, subdir: str) -> list[Path]:
    """Sorted .txt doc sources under one top-level directory."""
    return sorted((sources / subdir).rglob("*.txt"), key=lambda p: p.as_posix())


def collect_tutorial(sources: Path) -> list[Doc]:
    """All prose documents from the tutorial, HOWTO and FAQ pages."""
    return [d for sub in TUTORIAL_DIRS for p in doc_pages(sources, sub) for d in page_docs(sources, p)]


def collect_library(sources: Path, budget: int = LIBRARY_BUDGET_BYTES) -> list[Doc]:
    """The most prose-heavy library-reference pages, whole, up to a JSONL byte budget."""
    pages = []
    for path in doc_pages(sources, LIBRARY_DIR):
        docs = page_docs(sources, path)
        text = "".join(d.text for d in docs)
        if len(text) >= MIN_LIBRARY_PAGE_CHARS:
            pages.append((-prose_ratio(text), path.as_posix(), docs))
    chosen, used = [], 0
    for _, key, docs in sorted(pages, key=lambda p: (p[0], p[1])):
        size = sum(len(jsonl_line(d).encode()) for d in docs)
        if used + size <= budget:
            chosen.append((key, docs))
            used += size
    return [d for _, docs in sorted(chosen, key=lambda c: c[0]) for d in docs]


def jsonl_line(doc: Doc) -> str:
    """One document as a JSON line."""
    return json.dumps({"id": doc.id, "text": doc.text, "source": doc.source}, ensure_ascii=False) + "\n"


def write_jsonl(path: Path, docs: list[Doc]) -> None:
    """Write documents as one JSON object per line, UTF-8, no timestamps."""
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(jsonl_line(d) for d in docs)


def train_tokenizer(texts: list[str], out_dir: Path) -> None:
    """Train a GPT-2-style byte-level BPE and save it in Hugging Face format."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    # Qwen2's split (as GPT-4's, but every digit its own piece: numbers are read and written digit by
    # digit, as arithmetic needs); a Split regex the gigatoken backend also reads
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=[EOS_TOKEN, PAD_TOKEN, *CHAT_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    specials = {"bos_token": EOS_TOKEN, "eos_token": EOS_TOKEN, "unk_token": EOS_TOKEN, "pad_token": PAD_TOKEN}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **specials,
        "model_max_length": MODEL_MAX_LENGTH,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
    }
    write_json(out_dir / "tokenizer_config.json", config)
    write_json(out_dir / "special_tokens_map.json", specials)


def write_json(path: Path, obj: dict) -> None:
    """Write pretty, key-stable JSON."""
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def tokenizers_version() -> str:
    """Installed version of the tokenizers library."""
    import tokenizers

    return tokenizers.__version__


def count_tokens(tokenizer_file: Path, docs: list[Doc]) -> int:
    """Tokens of all document texts (without end-of-document tokens)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    return sum(len(e.ids) for e in tok.encode_batch([d.text for d in docs]))


def find_sources(root: Path) -> Path:
    """Locate the html/_sources directory inside an extracted doc tree."""
    if (root / "tutorial" / "index.rst.txt").is_file():
        return root
    for hit in sorted(root.rglob("_sources")):
        if (hit / "tutorial" / "index.rst.txt").is_file():
            return hit
    sys.exit(f"no Python doc sources (_sources/tutorial/index.rst.txt) under {root}")


def download_docs(workdir: Path) -> Path:
    """apt-get download + dpkg-deb -x the doc package into workdir; returns the tree."""
    subprocess.run(["apt-get", "download", DEB_PACKAGE], cwd=workdir, check=True)
    deb = sorted(workdir.glob(f"{DEB_PACKAGE}_*.deb"))[-1]
    tree = workdir / "out"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    return tree


def docs_release(sources: Path) -> str:
    """Exact documentation release (e.g. 3.11.2), read from the rendered license page."""
    page = sources.parent / "license.html"
    if page.is_file():
        found = re.search(r"PSF LICENSE AGREEMENT FOR PYTHON (3\.11[\w.]*)", page.read_text(encoding="utf-8"))
        if found:
            return found.group(1)
    return "3.11"


def rst_block(raw: str, label: str, release: str) -> str:
    """The section following '.. _label:' up to the next title or label, as plain text."""
    lines = raw.replace("|release|", release).splitlines()
    start = lines.index(f".. _{label}:") + 2
    title, body = lines[start], []
    for i in range(start + 2, len(lines)):
        if heading_at(lines, i) or lines[i].startswith(".. _"):
            break
        if lines[i].strip() != ".. parsed-literal::":
            body.append(lines[i])
    return f"{title}\n{'-' * len(title)}\n\n{textwrap.dedent(chr(10).join(body)).strip()}\n"


def license_text(sources: Path, release: str) -> str:
    """LICENSE-PSF.txt: the copyright notice, PSF License Agreement and 0BSD clause, verbatim."""
    paragraphs = (sources / "copyright.rst.txt").read_text(encoding="utf-8").split("\n\n")
    notices = [p.strip() for p in paragraphs if p.startswith("Copyright ")]
    raw = (sources / "license.rst.txt").read_text(encoding="utf-8")
    header = (
        f"Taken from the Python {release} documentation (Debian package {DEB_PACKAGE},\n"
        "files html/_sources/copyright.rst.txt and html/_sources/license.rst.txt).\n"
        "The full history and third-party licence list: https://docs.python.org/3.11/license.html\n"
    )
    terms = [rst_block(raw, "PSF-license", release), rst_block(raw, "BSD0", release)]
    copyright_part = "Python and this documentation is:\n\n" + "\n\n".join(notices)
    return "\n\n".join([header.rstrip(), copyright_part, *terms]).rstrip() + "\n"


def readme_text(release: str, stats: dict) -> str:
    """README.md describing the assets, their origin, licence and numbers."""
    rows = "\n".join(
        f"| `corpus-tiny/{name}` | {s['docs']} | {s['bytes']:,} | {s['tokens']:,} | {s['sources']} |"
        for name, s in stats["files"].items()
    )
    return f"""# nano3 tiny assets

Small, real English data for the `tiny` recipe, so that data prep, pretraining and
tests run fully offline. Generated by `scripts/make_tiny_assets.py`; do not edit by hand.

## Contents

- `corpus-tiny/python-tutorial.jsonl` – Python tutorial, HOWTO and FAQ pages.
- `corpus-tiny/python-library.jsonl` – the most prose-heavy pages of the library reference
  (whole pages of at least {MIN_LIBRARY_PAGE_CHARS:,} characters, taken in order of their share of
  sentence-like lines while they fit in {LIBRARY_BUDGET_BYTES:,} bytes of JSONL).
- `tokenizer-tiny/` – byte-level BPE (no prefix space), vocab {VOCAB_SIZE}, trained with the
  `tokenizers` library on both corpus files. Its pre-tokenizer splits text with Qwen2's pattern
  (GPT-4's, but every digit is its own piece), so numbers are always read digit by digit (the tiny
  SFT arithmetic needs that). Loads with `transformers.AutoTokenizer.from_pretrained(...)`,
  `tokenizers.Tokenizer.from_file(...)` and the gigatoken backend. Special tokens: `{EOS_TOKEN}`
  (id 0; BOS, EOS, end-of-document and unknown), `{PAD_TOKEN}` (id 1; padding), and the nano3 chat
  template's turn markers `{CHAT_TOKENS[0]}` (id 2) and `{CHAT_TOKENS[1]}` (id 3).
  No special tokens are added automatically when encoding.
- `LICENSE-PSF.txt` – copyright notice and licence terms, copied from the documentation.

Each JSONL line is one document: `{{"id": "<page>#<n>", "text": "...", "source": "<page path>"}}`,
where `source` is relative to `html/_sources/` of the doc package. A document is a doc page, or a
run of consecutive sections of a long page ({MIN_DOC_CHARS:,}–{MAX_DOC_CHARS:,} characters, split at
section titles, or at paragraphs for a single over-long section).

| file | documents | bytes | tokens | pages |
|---|---:|---:|---:|---:|
{rows}
| **total** | {stats["docs"]} | {stats["bytes"]:,} | {stats["tokens"]:,} | {stats["sources"]} |

Token counts use `tokenizer-tiny` and exclude end-of-document tokens.
`tokenizer-tiny/tokenizer.json` is {stats["tokenizer_bytes"]:,} bytes.

## Source

The Python {release} documentation sources (`*.rst.txt`) from Debian's `{DEB_PACKAGE}` package.
Changes made to them (summary, as the licence asks): reStructuredText markup was
converted to plain text (roles and links reduced to their text, directives to short labels or
signatures, index/toctree/table/option blocks and comments dropped, section underlines removed), long
pages were split into sections, chunks that are mostly code or tables were dropped, and only a subset
of the library reference is included.

## Licence

The documentation is Copyright © 2001-2023 Python Software Foundation; All Rights Reserved, and is
distributed under the **PSF License Agreement for Python {release}** (PSF-2.0); code examples in the
documentation are additionally available under the Zero-Clause BSD licence (0BSD). The terms are in
`LICENSE-PSF.txt`, copied from the package's `license.rst.txt`; the full text, including history and
third-party notices, is at <https://docs.python.org/3.11/license.html> and in the package's
`/usr/share/doc/{DEB_PACKAGE}/copyright`.

## Regenerate

```bash
python scripts/make_tiny_assets.py                       # downloads {DEB_PACKAGE} with apt-get
python scripts/make_tiny_assets.py --source-dir <tree>   # an already extracted package or _sources dir
```

Needs `tokenizers` (these files were made with {stats["tokenizers_version"]}). Output is deterministic for a
given doc package and `tokenizers` version.
"""


def read_jsonl(path: Path) -> list[Doc]:
    """The documents of a corpus file written by `write_jsonl`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Doc(**json.loads(line)) for line in lines if line.strip()]


def shipped_release(out: Path) -> str:
    """The documentation release named in the shipped licence file's header."""
    found = re.search(
        r"Taken from the Python (\S+) documentation", (out / "LICENSE-PSF.txt").read_text(encoding="utf-8")
    )
    return found.group(1) if found else "3.11"


def retrain_tokenizer(out: Path) -> dict:
    """Retrain the tokenizer on the shipped corpus files (no download) and rewrite the README's numbers."""
    corpus_dir, tok_dir = out / "corpus-tiny", out / "tokenizer-tiny"
    blend = {name: read_jsonl(corpus_dir / name) for name in ("python-tutorial.jsonl", "python-library.jsonl")}
    train_tokenizer([d.text for docs in blend.values() for d in docs], tok_dir)
    return write_stats(out, blend, shipped_release(out))


def build(sources: Path, out: Path) -> dict:
    """Write corpus, tokenizer, licence and README under out; return the numbers."""
    corpus_dir, tok_dir = out / "corpus-tiny", out / "tokenizer-tiny"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    blend = {"python-tutorial.jsonl": collect_tutorial(sources), "python-library.jsonl": collect_library(sources)}
    for name, docs in blend.items():
        write_jsonl(corpus_dir / name, docs)
    train_tokenizer([d.text for docs in blend.values() for d in docs], tok_dir)
    release = docs_release(sources)
    (out / "LICENSE-PSF.txt").write_text(license_text(sources, release), encoding="utf-8")
    return write_stats(out, blend, release)


def write_stats(out: Path, blend: dict[str, list[Doc]], release: str) -> dict:
    """Count the corpus files' documents, bytes and tokens; write README.md with them; return them."""
    corpus_dir, tok_dir = out / "corpus-tiny", out / "tokenizer-tiny"
    files = {
        name: {
            "docs": len(docs),
            "bytes": (corpus_dir / name).stat().st_size,
            "tokens": count_tokens(tok_dir / "tokenizer.json", docs),
            "sources": len({d.source for d in docs}),
        }
        for name, docs in blend.items()
    }
    stats = {key: sum(f[key] for f in files.values()) for key in ("docs", "bytes", "tokens", "sources")}
    stats.update(files=files, tokenizer_bytes=(tok_dir / "tokenizer.json").stat().st_size)
    stats["tokenizers_version"] = f"tokenizers {tokenizers_version()}"
    (out / "README.md").write_text(readme_text(release, stats), encoding="utf-8")
    return stats


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source-dir", type=Path, help="extracted python3.11-doc tree (default: apt-get download it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    parser.add_argument(
        "--tokenizer-only",
        action="store_true",
        help="retrain only the tokenizer, on the corpus files already in --out (no download)",
    )
    args = parser.parse_args(argv)
    if args.tokenizer_only:
        print(json.dumps(retrain_tokenizer(args.out), indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.source_dir or download_docs(Path(tmp))
        stats = build(find_sources(root), args.out)
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    main()
