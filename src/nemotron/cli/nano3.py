"""`nemotron nano3 ...`: the Nano3 recipe's stages (data prep, pretrain, sft, rl, eval) and `pipe`, all of them."""

from __future__ import annotations

import typer

from nemotron.cli.model import app as model_app
from nemotron.cli.pipe import EPILOG as PIPE_EPILOG
from nemotron.cli.pipe import EXTRA_ARGS as PIPE_ARGS
from nemotron.cli.pipe import make_pipe_command
from nemotron.cli.stage_command import EXTRA_ARGS, make_stage_command, stage_epilog
from nemotron.stages.catalog import (
    NANO3_DATA_PREP_PRETRAIN,
    NANO3_DATA_PREP_RL,
    NANO3_DATA_PREP_SFT,
    NANO3_EVAL,
    NANO3_PRETRAIN,
    NANO3_RL,
    NANO3_SFT,
    StageSpec,
)

HELP = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    help="Nano3 recipe: data prep -> pretrain -> SFT -> RL -> eval.\n\n"
    "Example: nemotron nano3 data prep pretrain -c tiny",
    no_args_is_help=True,
    context_settings=HELP,
)
data_app = typer.Typer(
    help="Data preparation stages.\n\nExample: nemotron nano3 data prep pretrain -c tiny",
    no_args_is_help=True,
    context_settings=HELP,
)
prep_app = typer.Typer(
    help="Prepare data for a training stage.\n\nExample: nemotron nano3 data prep pretrain -c tiny",
    no_args_is_help=True,
    context_settings=HELP,
)
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
data_app.add_typer(prep_app, name="prep")


def _register(group: typer.Typer, name: str, spec: StageSpec, usage: str) -> None:
    group.command(name, context_settings=EXTRA_ARGS, epilog=stage_epilog(spec, usage))(make_stage_command(spec, usage))


_register(prep_app, "pretrain", NANO3_DATA_PREP_PRETRAIN, "nemotron nano3 data prep pretrain")
_register(prep_app, "sft", NANO3_DATA_PREP_SFT, "nemotron nano3 data prep sft")
_register(prep_app, "rl", NANO3_DATA_PREP_RL, "nemotron nano3 data prep rl")
_register(app, "pretrain", NANO3_PRETRAIN, "nemotron nano3 pretrain")
_register(app, "sft", NANO3_SFT, "nemotron nano3 sft")
_register(app, "rl", NANO3_RL, "nemotron nano3 rl")
_register(app, "eval", NANO3_EVAL, "nemotron nano3 eval")
app.command("pipe", context_settings=PIPE_ARGS, epilog=PIPE_EPILOG)(make_pipe_command("nano3"))
