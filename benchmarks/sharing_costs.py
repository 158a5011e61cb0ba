"""What each way of sharing costs: seconds per step, trainable parameters, AdamW's state, checkpoint size.

hard, lora and soft (mtl_tutorial/sharing.py) on the same tasks, batches of real tweets, each in its own
process (its own peak memory), alternating, `--rounds` times. A step is what `fit` does with sampling: one
task's batch, its loss plus the sharing's penalty, backward, clip, fused AdamW over the trained parameters.
Run by hand; results go to benchmarks/RESULTS.md.

    nice python benchmarks/sharing_costs.py --data-dir ../shared/data/tweeteval --rounds 2 \
        --output benchmarks/sharing_costs-cpu.json
"""

from __future__ import annotations

import itertools
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mtl_tutorial.batching import BatchStream, encode_task
from mtl_tutorial.config import SHARINGS, TrainConfig
from mtl_tutorial.runs import load_run_tasks
from mtl_tutorial.sharing import build_shared_model, save_task_checkpoint
from step_cost import compare_in_children, resident_mib, step_options


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """AdamW's two moments (and step counts) for every parameter it has updated."""
    return sum(value.numel() * value.element_size() for state in optimizer.state.values()
               for value in state.values() if isinstance(value, torch.Tensor))


def measure(sharing: str, args) -> dict:
    """Time `args.steps` steps of one sharing after `args.warmup` unmeasured ones, in this process."""
    torch.manual_seed(0)
    config = TrainConfig(tasks=args.tasks, model=args.model, sharing=sharing, batch_size=args.batch_size,
                         max_train_examples=args.max_train_examples, max_eval_examples=8,
                         data_dir=args.data_dir)
    tasks = load_run_tasks(config)
    model, tokenizer = build_shared_model({name: task.label_names for name, task in tasks.items()}, config)
    streams = {name: BatchStream(encode_task(tokenizer, task, config.max_length)["train"], config.batch_size,
                                 config.seed) for name, task in tasks.items()}
    trained = model.trained_parameters()
    optimizer = torch.optim.AdamW(trained, lr=config.learning_rate, fused=True)
    model.train()
    before, seconds = resident_mib(), []
    for index, task in zip(range(args.warmup + args.steps), itertools.cycle(tasks)):
        batch = next(streams[task])
        started = time.perf_counter()
        (model.loss(batch, task) + model.penalty()).backward()
        torch.nn.utils.clip_grad_norm_(trained, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if index >= args.warmup:
            seconds.append(time.perf_counter() - started)
    started = time.perf_counter()
    penalty = model.penalty()
    if penalty.requires_grad:  # soft: its own forward and backward, within the step timed above
        penalty.backward()
    penalty_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = {task: (save_task_checkpoint(model, task, Path(folder) / task) / "task.safetensors")
                      .stat().st_size for task in tasks}
    return {"sharing": sharing, "seconds_per_step": statistics.median(seconds),
            "penalty_seconds": penalty_seconds,
            "trainable_parameters": sum(p.numel() for p in trained),
            "shared_trained_parameters": sum(p.numel() for p in model.shared_parameters()),
            "all_parameters": sum(p.numel() for p in model.parameters()),
            "optimizer_state_mib": optimizer_state_bytes(optimizer) / 2**20,
            "checkpoint_mib_per_task": {task: size / 2**20 for task, size in checkpoint.items()},
            "rss_before_steps_mib": before,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def summarise(runs: list[dict]) -> dict:
    """Per sharing: the median step time over the rounds, and the rest (the same every round)."""
    summary = {}
    for sharing in dict.fromkeys(run["sharing"] for run in runs):
        mine = [run for run in runs if run["sharing"] == sharing]
        step = statistics.median(run["seconds_per_step"] for run in mine)
        summary[sharing] = {**mine[0], "seconds_per_step": step,
                            "peak_rss_mib": max(r["peak_rss_mib"] for r in mine),
                            "step_seconds_of_each_round": [r["seconds_per_step"] for r in mine]}
    hard = summary.get("hard")
    for row in summary.values():
        if hard:
            row["step_time_vs_hard"] = row["seconds_per_step"] / hard["seconds_per_step"]
    return summary


def table(summary: dict) -> str:
    """The summary as a Markdown table for RESULTS.md."""
    lines = ["| sharing | s per step | vs hard | trained parameters | of them shared | AdamW state MiB | "
             "checkpoint MiB per task | peak RSS MiB |", "|---|---|---|---|---|---|---|---|"]
    for sharing, row in summary.items():
        sizes = " / ".join(f"{size:.2f}" for size in row["checkpoint_mib_per_task"].values())
        versus = row.get("step_time_vs_hard", 1)
        lines.append(f"| {sharing} | {row['seconds_per_step']:.3f} | {versus:.2f}x | "
                     f"{row['trainable_parameters']:,} | {row['shared_trained_parameters']:,} | "
                     f"{row['optimizer_state_mib']:.1f} | {sizes} | {row['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    args = step_options(__doc__, "sharing", SHARINGS).parse_args()
    if args.sharing:
        print(json.dumps(measure(args.sharing, args)))
        return
    compare_in_children(__file__, args, "sharing", args.sharings, summarise, table)


if __name__ == "__main__":
    main()
