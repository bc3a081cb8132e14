"""The one did-you-mean helper: close names as written, ignoring case and '-'/'_', and by a dotted key's last part."""

from __future__ import annotations

from nemotron.suggest import close_matches, did_you_mean


def test_a_typo_gets_one_suggestion():
    assert close_matches("partiton", ["partition", "account", "nodes"]) == ["partition"]


def test_nothing_close_gives_nothing():
    assert close_matches("zzz", ["partition", "account"]) == []
    assert did_you_mean("zzz", ["partition", "account"]) == ""
    assert did_you_mean("zzz", ["partition"], sentence=True) == ""


def test_the_word_itself_is_never_suggested():
    assert close_matches("tiny", ["tiny", "tinyy"]) == ["tinyy"]


def test_case_and_dashes_are_ignored_when_nothing_else_is_close():
    assert close_matches("GPUS-PER-NODE", ["gpus_per_node", "nodes"]) == ["gpus_per_node"]


def test_the_last_part_of_a_long_dotted_key():
    keys = ["model.transformer.block.attention.heads", "model.transformer.block.attention.iters"]
    assert close_matches("model.transformer.block.attention.itres", keys)[0].endswith(".iters")


def test_config_style_lists_near_ties():
    assert did_you_mean("model.hiden", ["model.hidden", "model.layers"]) == "; did you mean 'model.hidden'?"
    assert did_you_mean("ab1", ["ab2", "ab3"]) == "; did you mean 'ab2' or 'ab3'?"


def test_sentence_style_suggests_one_name():
    assert did_you_mean("slurn", ["slurm", "local", "docker"], sentence=True) == " Did you mean 'slurm'?"
    assert did_you_mean("ab1", ["ab2", "ab3"], sentence=True) == " Did you mean 'ab2'?"
