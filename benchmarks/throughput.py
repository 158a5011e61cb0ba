"""Training throughput: the package's loop against a faithful copy of the original tutorial's loop.

Both train the SAME model (encoder + heads) on the SAME capped TweetEval data, batch size, seed and
number of steps. Each loop runs in its own process (so each has its own peak memory), alternately,
`--rounds` times, and the medians are reported. Run by hand; results go to benchmarks/RESULTS.md.

    python benchmarks/throughput.py --data-dir ../shared/data/tweeteval --rounds 2
    python benchmarks/throughput.py --data-dir ../shared/data/tweeteval --variants package-bf16

`--variants` (one or more of package-bf16, package-no-length-grouping, package-unfused-adamw,
package-eager-attention, package-compiled, package-1-thread) also measures the package's loop with one
lever changed, to show what each is worth. package-compiled trains 2 epochs and reports the second (the
first compiles); its `first_epoch_seconds` shows what the compile cost.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import get_linear_schedule_with_warmup

from mtl_tutorial import train
from mtl_tutorial.batching import batches_per_pass
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.model import build_model
from mtl_tutorial.runs import load_run_tasks
from mtl_tutorial.sharing import build_shared_model
from mtl_tutorial.train import fit


def matmul_peak_gflops(dtype=torch.float32, size: int = 1024, seconds: float = 1.0,
                       windows: int = 5) -> float:
    """The machine's practical peak: the best GFLOP/s of repeated square matrix products in a few windows
    (on a shared 2-core machine one window read anywhere from 75 to 164 GFLOP/s)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(windows):
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            a @ b
            done += 1
        best = max(best, 2 * size**3 * done / (time.perf_counter() - started) / 1e9)
    return best


def encoder_flops_per_token(model) -> int:
    """6 x non-embedding parameters: the forward + backward cost of one real token (Kaplan et al. 2020)."""
    embeddings = sum(p.numel() for p in model.encoder.embeddings.parameters())
    return 6 * (sum(p.numel() for p in model.parameters()) - embeddings)


class PaddedTo64:
    """The original Dataset: tokenises the tweet on every access and pads it to max_length."""

    def __init__(self, frame, tokenizer, max_length):
        self.texts, self.labels = frame["text"].tolist(), frame["label"].tolist()
        self.tokenizer, self.max_length = tokenizer, max_length

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, index):
        encoded = self.tokenizer(self.texts[index], padding="max_length", truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        return {"ids": encoded["input_ids"][0], "mask": encoded["attention_mask"][0],
                "target": torch.tensor(self.labels[index])}


def original_loop(config: TrainConfig, steps: int) -> dict:
    """The tutorial's loop, defects kept: per-item tokenising, pad to 64, itertools.cycle, clip after step.
    With `config.mixed_precision` "bf16" its forward pass runs under bf16 autocast (the tutorial had none)."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    tasks = load_run_tasks(config)
    labels = {name: task.label_names for name, task in tasks.items()}
    model, tokenizer = build_model(labels, config.model, config.pooling)
    loaders = {
        name: torch.utils.data.DataLoader(PaddedTo64(task.splits["train"], tokenizer, config.max_length),
                                          batch_size=config.batch_size, shuffle=True, num_workers=2)
        for name, task in tasks.items()
    }
    cycles = {name: itertools.cycle(iter(loader)) for name, loader in loaders.items()}
    sizes = np.array([len(task.splits["train"]) for task in tasks.values()], dtype=float)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).train()
    examples = tokens = real_tokens = 0
    started = time.perf_counter()
    for _ in range(steps):
        task = np.random.choice(list(tasks), p=sizes / sizes.sum())
        batch = next(cycles[task])
        ids, mask, target = batch["ids"].to(device), batch["mask"].to(device), batch["target"].to(device)
        with torch.autocast(device, torch.bfloat16, enabled=config.mixed_precision == "bf16"):
            loss = F.cross_entropy(model(ids, mask, task), target)
        loss.backward()
        optimizer.step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)  # after the step: no effect
        scheduler.step()
        optimizer.zero_grad()
        if device == "cuda":
            torch.cuda.empty_cache()  # what the tutorial meant to do at every step
        examples += len(target)
        tokens += mask.numel()
        real_tokens += int(mask.sum())
    seconds = time.perf_counter() - started
    return {"examples_per_second": examples / seconds, "tokens_per_second": real_tokens / seconds,
            "pad_fraction": 1 - real_tokens / tokens, "seconds": seconds}


def package_loop(config: TrainConfig) -> dict:
    """`mtl_tutorial.fit` itself: its history records speed and padding. With several epochs the last one's
    speed is reported (warm), and the first epoch's seconds beside it (a compile happens there)."""
    with tempfile.TemporaryDirectory() as folder:
        epochs = fit(config, Path(folder) / "run", progress=False).history.drop_duplicates("epoch")
    keys = ("examples_per_second", "tokens_per_second", "pad_fraction", "seconds")
    return {**{key: float(epochs.iloc[-1][key]) for key in keys},
            "first_epoch_seconds": float(epochs.iloc[0]["seconds"])}


def unfused_optimizer(model, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with torch's default multi-tensor kernel instead of the fused one."""
    return torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)


# Levers that change the encoder after `build_model` made it (compiling in place keeps the state dict's keys).
ENCODER_CHANGES = {
    "package-eager-attention": lambda encoder: encoder.set_attn_implementation("eager"),
    "package-compiled": lambda encoder: encoder.compile(dynamic=True),
}


def with_encoder_change(change):
    """`build_shared_model`, then `change` applied to the new model's encoder."""
    def build(*args, **kwargs):
        model, tokenizer = build_shared_model(*args, **kwargs)
        change(model.encoder)
        return model, tokenizer
    return build


# The package's loop with one lever changed, to measure what each lever is worth.
VARIANTS = {
    "package": {},
    "package-bf16": {"mixed_precision": "bf16"},
    "package-no-length-grouping": {"group_by_length": False},
    "package-unfused-adamw": {},  # make_optimizer replaced in the child, see measure()
    "package-eager-attention": {},  # build_shared_model replaced in the child: eager attention, not sdpa
    "package-compiled": {"epochs": 2},  # torch.compile(dynamic=True): epoch 1 compiles, epoch 2 is timed
    "package-1-thread": {},  # torch.set_num_threads(1) in the child
}
LOOPS = ("original", *VARIANTS)


def measure(loop: str, config: TrainConfig) -> dict:
    """One loop's speed and peak memory, measured in this process."""
    tasks = load_run_tasks(config)
    steps = sum(batches_per_pass(len(task.splits["train"]), config.batch_size) for task in tasks.values())
    if loop == "package-unfused-adamw":
        train.make_optimizer = unfused_optimizer
    if loop in ENCODER_CHANGES:
        train.build_shared_model = with_encoder_change(ENCODER_CHANGES[loop])
    if loop == "package-1-thread":
        torch.set_num_threads(1)
    if loop == "original":
        result = original_loop(config, steps)
    else:
        result = package_loop(dataclasses.replace(config, **VARIANTS[loop]))
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return {"loop": loop, "steps": steps, **result}


def summarise(runs: list[dict], config: TrainConfig) -> dict:
    """Medians per loop, each loop's speed-up over the original, and model FLOPs utilisation against
    the matmul peak of the loop's precision."""
    model, _ = build_model({"task": ["a", "b"]}, config.model, config.pooling)
    flops_per_token = encoder_flops_per_token(model)
    peaks = {"fp32": matmul_peak_gflops(torch.float32), "bf16": matmul_peak_gflops(torch.bfloat16)}
    summary = {"flops_per_token": flops_per_token, "matmul_peak_gflops": peaks}
    for loop in dict.fromkeys(run["loop"] for run in runs):
        mine = [run for run in runs if run["loop"] == loop]
        median = {key: statistics.median(run[key] for run in mine)
                  for key in ("examples_per_second", "tokens_per_second", "pad_fraction")}
        median["peak_rss_mib"] = max(run["peak_rss_mib"] for run in mine)
        peak = peaks["bf16" if loop.endswith("bf16") else "fp32"]
        median["model_flops_utilisation"] = flops_per_token * median["tokens_per_second"] / (peak * 1e9)
        original = statistics.median(run["examples_per_second"] for run in runs if run["loop"] == "original")
        median["speed_up"] = median["examples_per_second"] / original
        summary[loop] = {**median, "runs": mine}
    summary["speed_up"] = summary["package"]["speed_up"]
    return summary


def report(summary: dict, output: Path | None) -> None:
    """Print the summary as JSON, and save it to `output` when one is given."""
    text = json.dumps(summary, indent=1)
    if output:
        output.write_text(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--model", help="encoder (default: the packaged MiniLM)")
    parser.add_argument("--max-train-examples", type=int, default=1024,
                        help="per task; steps = their batches")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS)[1:], default=[],
                        help="also measure the package's loop with one lever changed")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, help="write the summary as JSON here")
    parser.add_argument("--loop", choices=LOOPS, help=argparse.SUPPRESS)  # one measurement, in a child
    args = parser.parse_args()
    config = TrainConfig(model=args.model, epochs=1, max_train_examples=args.max_train_examples,
                         max_eval_examples=64, data_dir=args.data_dir)
    if args.loop:
        print(json.dumps(measure(args.loop, config)))
        return
    child = [sys.executable, __file__, "--max-train-examples", str(args.max_train_examples)]
    for name, flag in (("data_dir", "--data-dir"), ("model", "--model")):
        if getattr(args, name):
            child += [flag, getattr(args, name)]
    runs = []
    for _ in range(args.rounds):
        for loop in ["original", "package", *args.variants]:
            finished = subprocess.run(child + ["--loop", loop], capture_output=True, text=True, check=True)
            runs.append(json.loads(finished.stdout.strip().splitlines()[-1]))
            print(f"{loop}: {runs[-1]['examples_per_second']:.1f} examples/s", file=sys.stderr)
    report(summarise(runs, config), args.output)


if __name__ == "__main__":
    main()
