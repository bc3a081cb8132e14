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
