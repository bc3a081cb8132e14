"""--from/--to/--only/--force: which stages a pipe command covers, and mistakes named with suggestions."""

from __future__ import annotations

import pytest

from nemotron.config.errors import ConfigError
from nemotron.pipeline.selection import select_stages

NAMES = ("prep", "pretrain", "sft", "rl", "eval")


def test_everything_by_default_and_nothing_forced():
    selection = select_stages(NAMES)
    assert selection.selected == set(NAMES) and not selection.forced


def test_from_and_to_keep_a_contiguous_part():
    assert select_stages(NAMES, start="sft").selected == {"sft", "rl", "eval"}
    assert select_stages(NAMES, stop="pretrain").selected == {"prep", "pretrain"}
    assert select_stages(NAMES, start="pretrain", stop="rl").selected == {"pretrain", "sft", "rl"}


def test_only_and_force():
    selection = select_stages(NAMES, only="sft,eval", force="sft")
    assert selection.selected == {"sft", "eval"} and selection.forced == {"sft"}
    assert select_stages(NAMES, start="rl", force="all").forced == {"rl", "eval"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start": "sfx"}, r"--from 'sfx': no such stage in the pipe; did you mean 'sft'"),
        ({"only": "eval,rll"}, r"--only 'rll': no such stage.*did you mean 'rl'"),
        ({"start": "rl", "stop": "sft"}, r"--from rl comes after --to sft"),
        ({"only": "sft", "start": "prep"}, r"cannot be combined with --from/--to"),
        ({"start": "sft", "force": "pretrain"}, r"--force pretrain: not among the stages this command runs"),
        ({"only": " , "}, r"--only is empty"),
    ],
)
def test_mistakes_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        select_stages(NAMES, **options)
