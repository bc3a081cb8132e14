"""The attached-run writer: progress lines become one redrawn bar on a terminal, text passes through."""

import io

from nemotron.cli.progress_writer import ProgressAwareWriter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_pipe_gets_every_line_unchanged():
    out = io.StringIO()
    writer = ProgressAwareWriter(out)
    writer.write("data prep: x\nprogress: 1/4 shards, 10 documents\npart")
    writer.write("ial line\n")
    writer.close()
    assert out.getvalue() == "data prep: x\nprogress: 1/4 shards, 10 documents\npartial line\n"


def test_terminal_redraws_one_bar_and_keeps_other_lines():
    out = Terminal()
    writer = ProgressAwareWriter(out)
    writer.write("start\nprogress: 1/4 shards, 10 documents, 5 tokens/s\nprogress: 4/4 shards, 40 documents\n")
    writer.write("published x:v1\n")
    writer.close()
    text = out.getvalue()
    assert text.startswith("start\n")
    assert "\r[" + "#" * 6 + "." * 18 + "] 1/4 shards · 10 documents, 5 tokens/s" in text
    assert "\r[" + "#" * 24 + "] 4/4 shards · 40 documents" in text
    assert "progress:" not in text  # shown as the bar, not as log lines
    assert text.endswith("\r\033[Kpublished x:v1\n")  # the bar is cleared before normal output
