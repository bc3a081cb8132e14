"""The pipe's orchestration overhead: `nemotron nano3 pipe` vs the same stages run as separate commands.

Both run in fresh homes of this script, one after the other: first the baseline, each stage's own command
(`nemotron nano3 <stage> -c <config> <the pipe file's overrides>`, what a user types by hand), then the pipe.
Printed: each stage's job time inside the pipe, the pipe's wall time, its orchestration (wall time minus the
stages' jobs: planning with fingerprints, launch checks, submission, following), and the ratio of the pipe's
wall time to the baseline's. Goal: orchestration under 5% of the stages' time for the tiny chain.

    python benchmarks/pipe_overhead.py                 # a small 4-stage chain (about 2 minutes)
    python benchmarks/pipe_overhead.py --config tiny   # the quick start's whole tiny chain (about 45 minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import CommandFailed, nemotron_command, write_json

REPO = Path(__file__).resolve().parents[1]
# the stage commands by kind (`stage:` of a pipe file)
COMMANDS = {
    "data-prep-pretrain": ("nano3", "data", "prep", "pretrain"),
    "data-prep-sft": ("nano3", "data", "prep", "sft"),
    "data-prep-rl": ("nano3", "data", "prep", "rl"),
    "pretrain": ("nano3", "pretrain"),
    "sft": ("nano3", "sft"),
    "rl": ("nano3", "rl"),
    "eval": ("nano3", "eval"),
}
SMALL = """
stages:
  prep_pretrain: {stage: data-prep-pretrain, config: tiny}
  pretrain:
    stage: pretrain
    config: tiny
    overrides: [model.num_layers=2, model.hidden_size=64, model.num_attention_heads=4, model.num_query_groups=2,
      model.ffn_hidden_size=128, model.seq_length=64, train.global_batch_size=8, train.micro_batch_size=4,
      train.eval_iters=2, train.train_iters=40, lr.warmup_iters=4, guard.warmup_steps=4, train.eval_interval=20,
      sample.tokens=0, checkpoint.save_interval=20]
  prep_sft: {stage: data-prep-sft, config: tiny, overrides: [pack_size=64, overflow=drop, num_shards=2]}
  sft:
    stage: sft
    config: tiny
    overrides: [train.train_iters=40, train.eval_interval=20, checkpoint.save_interval=20, lr.warmup_iters=2,
      guard.warmup_steps=2, answers.count=4, answers.max_new_tokens=8]
"""


def run(args: list[str], home: Path, cwd: Path) -> float:
    """Wall seconds of one `nemotron` command in `home`; CommandFailed when it fails."""
    env = {**os.environ, "NEMOTRON_HOME": str(home), "NEMORUN_HOME": str(home / "nemo_run")}
    env["NEMOTRON_ENV_FILE"] = str(cwd / "env.toml")
    env.pop("NEMOTRON_ARTIFACTS_ROOT", None)
    started = time.perf_counter()
    done = subprocess.run([*nemotron_command(), *args], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise CommandFailed(f"nemotron {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="a pipe config (name or path); default: a small chain")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from nemotron.pipeline.pipe_config import load_pipe_config

    with tempfile.TemporaryDirectory(prefix="pipe-overhead-") as scratch:
        work = Path(scratch)
        (work / "env.toml").write_text("")
        config = args.config
        if config is None:
            (work / "small.yaml").write_text(SMALL)
            config = str(work / "small.yaml")
        pipe = load_pipe_config(config, "nano3")

        baseline: dict[str, float] = {}
        for stage in pipe.stages:  # each stage's own command, in a home of its own
            command = [*COMMANDS[stage.spec.key], "-c", stage.config, *stage.overrides]
            baseline[stage.name] = run(command, work / "baseline", work)
            print(f"baseline {stage.name}: {baseline[stage.name]:.1f} s")
        pipe_wall = run(["nano3", "pipe", "-c", config], work / "pipe", work)
        [record_file] = (work / "pipe" / "pipes").glob("*/pipe.json")
        record = json.loads(record_file.read_text())

    stages = {stage["name"]: stage["seconds"] for stage in record["stages"]}
    in_stages = sum(stages.values())
    orchestration = pipe_wall - in_stages
    baseline_wall = sum(baseline.values())
    print("\nstage            job in pipe   own command")
    for name, seconds in stages.items():
        print(f"{name:<16} {seconds:>9.1f} s   {baseline[name]:>9.1f} s")
    print(f"\npipe wall time {pipe_wall:.1f} s; its stages' jobs {in_stages:.1f} s")
    print(f"orchestration {orchestration:.1f} s = {orchestration / in_stages:.1%} of the stages' time (goal < 5%)")
    print(f"pipe / separate commands: {pipe_wall / baseline_wall:.3f}x ({pipe_wall:.1f} s vs {baseline_wall:.1f} s)")
    if args.json:
        write_json(
            args.json,
            {
                "config": config,
                "stages": stages,
                "baseline": baseline,
                "pipe_wall_s": pipe_wall,
                "orchestration_s": orchestration,
                "orchestration_ratio": orchestration / in_stages,
                "pipe_vs_commands": pipe_wall / baseline_wall,
            },
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CommandFailed as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
