"""The cost of one training step of each way of combining tasks: seconds per step and peak memory.

"sample" trains one sampled task per step (one batch); "all-tasks <combine>" takes one batch of every task
per step and combines them (mtl_tutorial/combine.py). Every arm trains the same model on the same capped
TweetEval data with the package's own step functions. Each arm runs in its own process (its own peak
memory), the arms alternate, `--rounds` times, and the medians are reported. Run by hand; results go to
benchmarks/RESULTS.md.

    python benchmarks/step_cost.py --data-dir ../shared/data/tweeteval --rounds 2 \
        --output benchmarks/step_cost-cpu.json

`--profile` also runs the measured steps under torch's profiler and reports what share of the operators'
time went to matmuls, to dropout's random numbers, to AdamW and to the rest (the profiler slows the steps).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mtl_tutorial.combine import COMBINERS
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.train import (all_tasks_step, epoch_plan, linear_warmup_schedule, make_accelerator,
                                prepare_run, train_step)

ARMS = ("sample", *(f"all-tasks {combine}" for combine in COMBINERS))
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
# What a step's time goes to, by the profiler's operator names (self time: each operator's own work).
OPERATOR_KINDS = {"matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"),
                  "dropout_random_numbers": ("aten::bernoulli_",),
                  "adamw": ("aten::_fused_adamw_",)}  # the package's AdamW is the fused one


def time_by_kind(profiler) -> dict[str, float]:
    """The shares of the profiled operators' time that went to each kind in OPERATOR_KINDS, and the rest."""
    self_time = {event.key: event.self_cpu_time_total for event in profiler.key_averages()}
    total = sum(self_time.values())
    shares = {kind: sum(self_time.get(name, 0) for name in names) / total
              for kind, names in OPERATOR_KINDS.items()}
    return {**shares, "other": 1 - sum(shares.values())}


def resident_mib() -> float:
    """The memory this process holds now (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def arm_config(arm: str, args) -> TrainConfig:
    strategy, _, combine = arm.partition(" ")
    return TrainConfig(tasks=args.tasks, model=args.model, strategy=strategy, combine=combine or None,
                       batch_size=args.batch_size, max_train_examples=args.max_train_examples,
                       max_eval_examples=8, data_dir=args.data_dir)


def measure(arm: str, args) -> dict:
    """Time `args.steps` steps of one arm after `args.warmup` unmeasured ones, in this process."""
    config = arm_config(arm, args)
    accelerator = make_accelerator(config.mixed_precision)
    run = prepare_run(Path(tempfile.mkdtemp(prefix="step-cost-")), config, False, accelerator, False)
    run.state.scheduler = linear_warmup_schedule(run.state.optimizer, 0, 10**6)
    run.steps_per_epoch = args.warmup + args.steps
    run.model.train()
    _, schedule = epoch_plan(run, 1)
    streams = run.state.streams
    before, seconds, examples = resident_mib(), [], 0
    profiler = (torch.profiler.profile(schedule=torch.profiler.schedule(wait=args.warmup, warmup=0,
                                                                        active=args.steps))
                if args.profile else contextlib.nullcontext())
    with profiler:
        for index, step_tasks in enumerate(schedule):
            batches = {task: next(streams[task]) for task in step_tasks}
            started = time.perf_counter()
            if config.strategy == "sample":
                [(task, batch)] = batches.items()
                train_step(run, batch, task)
            else:
                all_tasks_step(run, batches)
            if index >= args.warmup:
                seconds.append(time.perf_counter() - started)
                examples += sum(len(batch["labels"]) for batch in batches.values())
            if args.profile:
                profiler.step()
    encoder = run.state.model.encoder
    return {**({"time_by_kind": time_by_kind(profiler)} if args.profile else {}),
            "arm": arm, "seconds_per_step": statistics.median(seconds),
            "examples_per_step": examples / len(seconds),
            "seconds_per_1000_examples": 1000 * sum(seconds) / examples,
            "rss_before_steps_mib": before,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "encoder_parameters": sum(p.numel() for p in encoder.parameters())}


def machine() -> dict:
    """What ran the benchmark: the CPU, the flags that matter to torch, threads, versions, how busy it was."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    first_processor = [line.partition(":") for line in cpuinfo.split("\n\n")[0].splitlines()]
    fields = {key.strip(): value.strip() for key, _, value in first_processor}
    flags = fields.get("flags", "").split()
    return {"cpu": fields.get("model name", platform.processor()),
            "cpu_flags": [flag for flag in CPU_FLAGS if flag in flags], "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "load_average": os.getloadavg()}


def summarise(runs: list[dict]) -> dict:
    """Medians per arm, and each arm's cost per step and per example relative to sampling."""
    summary = {}
    for arm in dict.fromkeys(run["arm"] for run in runs):
        mine = [run for run in runs if run["arm"] == arm]
        summary[arm] = {key: statistics.median(run[key] for run in mine)
                        for key in ("seconds_per_step", "seconds_per_1000_examples", "examples_per_step")}
        summary[arm]["peak_rss_mib"] = max(run["peak_rss_mib"] for run in mine)
        summary[arm]["step_memory_mib"] = max(run["peak_rss_mib"] - run["rss_before_steps_mib"]
                                              for run in mine)
        if "time_by_kind" in mine[0]:
            summary[arm]["time_by_kind"] = {kind: statistics.median(run["time_by_kind"][kind] for run in mine)
                                            for kind in mine[0]["time_by_kind"]}
        summary[arm]["runs"] = mine
    sample = summary["sample"]
    for row in summary.values():
        row["step_time_vs_sample"] = row["seconds_per_step"] / sample["seconds_per_step"]
        row["example_time_vs_sample"] = row["seconds_per_1000_examples"] / sample["seconds_per_1000_examples"]
    return summary


def table(summary: dict) -> str:
    """The summary as a Markdown table for RESULTS.md."""
    lines = ["| arm | examples per step | s per step | s per 1000 examples | vs sample (per example) | "
             "peak RSS MiB | step memory MiB |", "|---|---|---|---|---|---|---|"]
    for arm, row in summary.items():
        lines.append(f"| {arm} | {row['examples_per_step']:.0f} | {row['seconds_per_step']:.3f} | "
                     f"{row['seconds_per_1000_examples']:.2f} | {row['example_time_vs_sample']:.2f}x | "
                     f"{row['peak_rss_mib']:.0f} | {row['step_memory_mib']:.0f} |")
    return "\n".join(lines)


def step_options(description: str, kind: str, choices: list[str]) -> argparse.ArgumentParser:
    """The options of both step benchmarks (this one and sharing_costs.py): data, encoder, batches, steps,
    rounds, where to write; `--{kind}s` chooses what to compare, `--{kind}` is one child's measurement."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--model", help="encoder (default: the packaged MiniLM)")
    parser.add_argument("--tasks", nargs="+", default=["emotion", "sentiment"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-train-examples", type=int, default=512, help="per task")
    parser.add_argument("--steps", type=int, default=8, help=f"measured steps per {kind} and round")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps first")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(f"--{kind}s", nargs="+", choices=choices, default=list(choices))
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument(f"--{kind}", choices=choices, help=argparse.SUPPRESS)  # one measurement, in a child
    return parser


def compare_in_children(script: str, args, kind: str, names: list[str], summarise, table,
                        extra: tuple[str, ...] = ()) -> None:
    """Measure each of `names` in a fresh process of `script` (its own peak memory), alternating,
    `args.rounds` times; print the summary as JSON and as a table, and write the JSON to `args.output`."""
    child = [sys.executable, script, "--tasks", *args.tasks, "--batch-size", str(args.batch_size),
             "--max-train-examples", str(args.max_train_examples), "--steps", str(args.steps),
             "--warmup", str(args.warmup), *extra]
    child += [word for name, flag in (("data_dir", "--data-dir"), ("model", "--model")) if getattr(args, name)
              for word in (flag, getattr(args, name))]
    started, runs = machine(), []
    for _ in range(args.rounds):
        for name in names:
            finished = subprocess.run(child + [f"--{kind}", name], capture_output=True, text=True)
            if finished.returncode:
                sys.exit(f"{name} failed:\n{finished.stderr[-3000:]}")
            runs.append(json.loads(finished.stdout.strip().splitlines()[-1]))
            print(f"{name}: {runs[-1]['seconds_per_step']:.3f} s per step", file=sys.stderr)
    settings = {key: value for key, value in vars(args).items() if key not in (kind, "output")}
    result = {"machine": started, "load_average_at_end": os.getloadavg(), "settings": settings,
              f"{kind}s": summarise(runs)}
    text = json.dumps(result, indent=1, default=str)
    if args.output:
        args.output.write_text(text + "\n")
    print(text)
    print(table(result[f"{kind}s"]), file=sys.stderr)


def main() -> None:
    parser = step_options(__doc__, "arm", ARMS)
    parser.add_argument("--profile", action="store_true",
                        help="also report the share of the steps' time by kind of operator")
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(measure(args.arm, args)))
        return
    arms = ["sample", *(arm for arm in args.arms if arm != "sample")]
    compare_in_children(__file__, args, "arm", arms, summarise, table, ("--profile",) if args.profile else ())


if __name__ == "__main__":
    main()
