"""Measure start-up latency of the `nemotron` CLI (`--help`, a local and a Slurm dry run) against Python baselines."""

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
GOALS_S = {"help": 0.5, "slurm_dry_run": 1.0}

# NVIDIA's Nemotron CLI measured on the reference machine (median wall time, seconds).
REFERENCE_S = {"help": 1.95, "slurm_dry_run": 2.1}

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

STAGE_ARGS = ["nano3", "data", "prep", "pretrain", "-c", "tiny", "--dry-run"]
FULL_NEMO_RUN_IMPORT = "import nemo_run"  # everything NeMo-Run's package imports (torch included)


def run_once(
    cmd: list[str], env: dict[str, str], cwd: str, timeout: float
) -> tuple[float, subprocess.CompletedProcess[str]]:
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


def measure(
    label: str, cmd: list[str], env: dict[str, str], cwd: str, args: argparse.Namespace, show_output: bool = False
) -> dict:
    """Median, min and max wall time of `args.runs` runs of `cmd` (after `args.warmup` untimed runs)."""
    for _ in range(args.warmup):
        run_once(cmd, env, cwd, args.timeout)
    times = []
    proc = None
    for _ in range(args.runs):
        elapsed, proc = run_once(cmd, env, cwd, args.timeout)
        times.append(elapsed)
    result = {
        "label": label,
        "command": cmd,
        "runs": args.runs,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
    }
    print(
        f"  {label:<30} median {result['median_s']:.3f} s   min {result['min_s']:.3f} s   max {result['max_s']:.3f} s",
        flush=True,
    )
    if show_output and proc is not None:
        print("  " + "-" * 60)
        for line in (proc.stdout + proc.stderr).rstrip().splitlines():
            print(f"  | {line}")
        print("  " + "-" * 60, flush=True)
    return result


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (default: 7)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed runs per command first, to warm the OS and .pyc caches (default: 1)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before one run counts as failed")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")
    parser.add_argument(
        "--show-output", action="store_true", help="print the output of the last run of each CLI command"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")

    cli = nemotron_command()
    python = [sys.executable]
    with tempfile.TemporaryDirectory(prefix="nemotron-bench-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "env.toml").write_text(ENV_TOML)
        (tmp_path / "home").mkdir()
        workdir = tmp_path / "cwd"  # empty cwd: no env.toml or job state from the checkout leaks in
        workdir.mkdir()
        env = {
            **os.environ,
            "NEMOTRON_ENV_FILE": str(tmp_path / "env.toml"),
            "NEMOTRON_HOME": str(tmp_path / "home"),
            "NEMORUN_HOME": str(tmp_path / "home" / "nemo_run"),
        }
        cwd = str(workdir)

        print(f"python:   {sys.executable} ({platform.python_version()})")
        print(f"nemotron: {' '.join(cli)}")
        print(f"runs:     {args.runs} timed (+{args.warmup} warm-up) per command; load average {load_average()}\n")
        try:
            print("CLI")
            r = {
                "help": measure("nemotron --help", cli + ["--help"], env, cwd, args, args.show_output),
                "local_dry_run": measure(
                    "dry run (no profile: local)", cli + STAGE_ARGS, env, cwd, args, args.show_output
                ),
                "slurm_dry_run": measure(
                    f"dry run (--batch {PROFILE})",
                    cli + [*STAGE_ARGS, "--batch", PROFILE],
                    env,
                    cwd,
                    args,
                    args.show_output,
                ),
            }
            print("\nBaselines (same interpreter)")
            r["python_startup"] = measure('python -c "pass"', python + ["-c", "pass"], env, cwd, args)
            r["import_nemo_run"] = measure(
                f'python -c "{FULL_NEMO_RUN_IMPORT}"', python + ["-c", FULL_NEMO_RUN_IMPORT], env, cwd, args
            )
        except CommandFailed as exc:
            print(f"\nERROR: {exc}", file=sys.stderr)
            return 1

    median = {key: value["median_s"] for key, value in r.items()}
    ratios = {
        "help_over_python_startup": median["help"] / median["python_startup"],
        "local_dry_run_over_python_startup": median["local_dry_run"] / median["python_startup"],
        "slurm_dry_run_over_python_startup": median["slurm_dry_run"] / median["python_startup"],
        "slurm_dry_run_over_import_nemo_run": median["slurm_dry_run"] / median["import_nemo_run"],
        "slurm_dry_run_over_local_dry_run": median["slurm_dry_run"] / median["local_dry_run"],
    }
    print("\nRatios (medians)")
    for key, value in ratios.items():
        print(f"  {key.replace('_over_', ' / ').replace('_', ' '):<36} {value:6.2f}x")

    goals = {}
    print("\nGoals (median)                   measured   goal      reference (NVIDIA Nemotron CLI)")
    for key, goal in GOALS_S.items():
        verdict = "PASS" if median[key] < goal else "MISS"
        goals[key] = {"goal_s": goal, "median_s": median[key], "verdict": verdict}
        print(f"  {r[key]['label']:<30} {median[key]:6.3f} s  < {goal:.1f} s   ~{REFERENCE_S[key]:.2f} s   {verdict}")

    if args.json:
        payload = {
            "python": sys.executable,
            "python_version": platform.python_version(),
            "platform": platform.platform(),
            "load_average": load_average(),
            "nemotron_command": cli,
            "runs": args.runs,
            "warmup": args.warmup,
            "results": r,
            "ratios": ratios,
            "goals": goals,
            "reference": {
                "source": "NVIDIA Nemotron CLI, same machine",
                **{f"{key}_s": value for key, value in REFERENCE_S.items()},
            },
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
