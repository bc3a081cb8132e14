"""Measure start-up latency of the `nemotron` CLI (`--help` and a Slurm dry run) against Python baselines."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import CommandFailed, nemotron_command, write_json

# Goals for this project's CLI (median wall time, seconds).
GOAL_HELP_S = 0.5
GOAL_DRY_RUN_S = 2.0

# NVIDIA's Nemotron CLI measured on the reference machine (median wall time, seconds).
REFERENCE_HELP_S = 1.95
REFERENCE_DRY_RUN_S = 2.1

PROFILE = "bench-slurm"
ENV_TOML = f"""\
[{PROFILE}]
executor = "slurm"
account = "bench"
partition = "batch"
nodes = 2
ntasks_per_node = 8
gpus_per_node = 8
time = "01:00:00"
container_image = "/images/nemotron.sqsh"
container_mounts = ["/data:/data"]
"""

DRY_RUN_ARGS = ["nano3", "data", "prep", "pretrain", "-c", "tiny", "--dry-run", "--batch", PROFILE]


def run_once(cmd: list[str], env: dict[str, str], cwd: str, timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"timed out after {timeout:.0f} s: {' '.join(cmd)}") from exc
    except OSError as exc:
        raise CommandFailed(f"could not start {' '.join(cmd)}: {exc}") from exc
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise CommandFailed(
            f"exit status {proc.returncode}: {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout.rstrip()}\n--- stderr ---\n{proc.stderr.rstrip()}"
        )
    return elapsed, proc


def measure(label: str, cmd: list[str], env: dict[str, str], cwd: str, runs: int, warmup: int,
            timeout: float, show_output: bool) -> dict:
    for _ in range(warmup):
        run_once(cmd, env, cwd, timeout)
    times = []
    proc = None
    for _ in range(runs):
        elapsed, proc = run_once(cmd, env, cwd, timeout)
        times.append(elapsed)
    result = {
        "label": label,
        "command": cmd,
        "runs": runs,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
    }
    print(f"  {label:<28} median {result['median_s']:.3f} s   min {result['min_s']:.3f} s   "
          f"max {result['max_s']:.3f} s   ({runs} runs)", flush=True)
    if show_output and proc is not None:
        print("  " + "-" * 60)
        for line in (proc.stdout + proc.stderr).rstrip().splitlines():
            print(f"  | {line}")
        print("  " + "-" * 60, flush=True)
    return result


def verdict(value: float, goal: float) -> str:
    return "PASS" if value < goal else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (default: 7)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed runs per command first, to warm the OS and .pyc caches (default: 1)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before one run counts as failed")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")
    parser.add_argument("--show-output", action="store_true", help="print the output of the last run of each CLI command")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")

    cli = nemotron_command()
    python = [sys.executable]

    with tempfile.TemporaryDirectory(prefix="nemotron-bench-") as tmp:
        tmp_path = Path(tmp)
        env_file = tmp_path / "env.toml"
        env_file.write_text(ENV_TOML)
        home = tmp_path / "home"
        home.mkdir()
        workdir = tmp_path / "cwd"  # empty cwd: no env.toml or job state from the checkout leaks in
        workdir.mkdir()
        env = dict(os.environ)
        env["NEMOTRON_ENV_FILE"] = str(env_file)
        env["NEMOTRON_HOME"] = str(home)

        print(f"python:   {sys.executable} ({platform.python_version()})")
        print(f"nemotron: {' '.join(cli)}")
        print(f"runs:     {args.runs} timed (+{args.warmup} warm-up) per command\n")

        try:
            print("CLI")
            help_r = measure("nemotron --help", cli + ["--help"], env, str(workdir),
                             args.runs, args.warmup, args.timeout, args.show_output)
            dry_r = measure("dry run (slurm profile)", cli + DRY_RUN_ARGS, env, str(workdir),
                            args.runs, args.warmup, args.timeout, args.show_output)
            print("\nBaselines (same interpreter)")
            pass_r = measure('python -c "pass"', python + ["-c", "pass"], env, str(workdir),
                             args.runs, args.warmup, args.timeout, False)
            nemo_r = measure('python -c "import nemo_run"', python + ["-c", "import nemo_run"], env, str(workdir),
                             args.runs, args.warmup, args.timeout, False)
        except CommandFailed as exc:
            print(f"\nERROR: {exc}", file=sys.stderr)
            return 1

    help_ratio = help_r["median_s"] / pass_r["median_s"]
    dry_ratio = dry_r["median_s"] / nemo_r["median_s"]
    print("\nRatios (medians)")
    print(f"  --help / python start-up      {help_ratio:6.2f}x")
    print(f"  dry run / import nemo_run     {dry_ratio:6.2f}x")

    help_v = verdict(help_r["median_s"], GOAL_HELP_S)
    dry_v = verdict(dry_r["median_s"], GOAL_DRY_RUN_S)
    print("\nGoals (median)                  measured   goal      reference (NVIDIA Nemotron CLI)")
    print(f"  nemotron --help               {help_r['median_s']:6.3f} s  < {GOAL_HELP_S:.1f} s   "
          f"~{REFERENCE_HELP_S:.2f} s   {help_v}")
    print(f"  dry run (slurm profile)       {dry_r['median_s']:6.3f} s  < {GOAL_DRY_RUN_S:.1f} s   "
          f"~{REFERENCE_DRY_RUN_S:.2f} s   {dry_v}")

    if args.json:
        payload = {
            "python": sys.executable,
            "python_version": platform.python_version(),
            "platform": platform.platform(),
            "nemotron_command": cli,
            "runs": args.runs,
            "warmup": args.warmup,
            "results": {"help": help_r, "dry_run": dry_r, "python_startup": pass_r, "import_nemo_run": nemo_r},
            "ratios": {"help_over_python_startup": help_ratio, "dry_run_over_import_nemo_run": dry_ratio},
            "goals": {
                "help": {"goal_s": GOAL_HELP_S, "median_s": help_r["median_s"], "verdict": help_v},
                "dry_run": {"goal_s": GOAL_DRY_RUN_S, "median_s": dry_r["median_s"], "verdict": dry_v},
            },
            "reference": {"source": "NVIDIA Nemotron CLI, same machine",
                          "help_s": REFERENCE_HELP_S, "dry_run_s": REFERENCE_DRY_RUN_S},
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
