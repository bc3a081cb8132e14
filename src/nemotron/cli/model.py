"""`nemotron nano3 model export hf`: turn a trained checkpoint into a Hugging Face model folder."""

from __future__ import annotations

from pathlib import Path

import typer

HELP = {"help_option_names": ["-h", "--help"]}
DTYPES = ("bfloat16", "float16", "float32")

app = typer.Typer(
    help="Work with trained models.\n\nExample: nemotron nano3 model export hf nano3-pretrain-tiny:latest ./hf-tiny",
    no_args_is_help=True,
    context_settings=HELP,
)
export_app = typer.Typer(
    help="Export a checkpoint to another format.\n\n"
    "Example: nemotron nano3 model export hf nano3-pretrain-tiny:latest ./hf-tiny",
    no_args_is_help=True,
    context_settings=HELP,
)
app.add_typer(export_app, name="export")
import_app = typer.Typer(
    help="Import a model from another format as a model-checkpoint artifact.\n\n"
    "Example: nemotron nano3 model import hf ./Llama-3.2-1B --name llama32-1b",
    no_args_is_help=True,
    context_settings=HELP,
)
app.add_typer(import_app, name="import")


@export_app.command("hf")
def export_hf_command(
    ref: str = typer.Argument(
        ..., help="a model-checkpoint artifact (name:vN, name:latest) or a checkpoint folder (iter_XXXXXXX)"
    ),
    out: Path = typer.Argument(
        ..., help="the folder to write (empty or absent; or an earlier export with --overwrite)"
    ),
    dtype: str = typer.Option("bfloat16", "--dtype", help=f"weight type: {', '.join(DTYPES)}"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace an earlier export in OUT (a folder holding other files is refused)"
    ),
) -> None:
    """Write safetensors + config.json + tokenizer that transformers' AutoModelForCausalLM loads.

    Llama-style models export as LlamaForCausalLM (with QK layernorm: Qwen3ForCausalLM); checkpoints
    saved with tensor/pipeline parallelism are merged first.

    Example: nemotron nano3 model export hf nano3-pretrain-tiny:latest ./hf-tiny
    """
    from nemotron.cli.artifacts import configured_registry
    from nemotron.config.errors import ConfigError
    from nemotron.quiet import silence_megatron_fallback_warnings

    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    silence_megatron_fallback_warnings()
    from nemotron.training.export.from_checkpoint import export_checkpoint_hf

    written = export_checkpoint_hf(ref, out, configured_registry(), dtype=dtype, overwrite=overwrite)
    print(f"exported {ref} to {written} (load with transformers.AutoModelForCausalLM.from_pretrained)")


@import_app.command("hf")
def import_hf_command(
    path: Path = typer.Argument(..., help="a Hugging Face model folder: config.json, *.safetensors, tokenizer files"),
    name: str = typer.Option(..., "--name", help="the model-checkpoint artifact to publish (its next version)"),
) -> None:
    """Convert a LlamaForCausalLM or Qwen3ForCausalLM folder into a megatron checkpoint artifact.

    Tied or untied embeddings, grouped-query attention and Llama-3 RoPE scaling are supported; the
    tokenizer files are published with it. `model export hf NAME:latest OUT` converts it back.

    Example: nemotron nano3 model import hf ./Llama-3.2-1B --name llama32-1b
    """
    from nemotron.cli.artifacts import configured_registry
    from nemotron.quiet import silence_megatron_fallback_warnings

    silence_megatron_fallback_warnings()
    from nemotron.stages.catalog import import_hf_model

    artifact = import_hf_model(path, name, configured_registry())
    print(f"imported {path} as {artifact.ref} at {artifact.path}")
