"""Inference speed: the package's `evaluate` and `predict` against the original tutorial's evaluation.

The original tokenised each tweet on access, padded it to 64 and ran a DataLoader with 2 workers;
ours tokenises once, sorts by length, pads per batch and runs under `torch.inference_mode`. Same
model, same tweets, batch 128. Run by hand; results go to benchmarks/RESULTS.md.

    python benchmarks/inference.py --data-dir ../shared/data/tweeteval [--mixed-precision bf16]

`--compiled-rounds N` also times `evaluate` with the encoder under `torch.compile(dynamic=True)`: one pass
that compiles, then N rounds of plain and compiled passes taking turns in this process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from mtl_tutorial.batching import encode
from mtl_tutorial.data import load_task
from mtl_tutorial.evaluate import evaluate_split, predict
from mtl_tutorial.model import build_model

from throughput import PaddedTo64, report


def original_evaluation(model, tokenizer, frame, task: str, batch_size: int, max_length: int) -> list[int]:
    """The tutorial's evaluation: per-item tokenising, padding to 64, a DataLoader, torch.no_grad."""
    loader = torch.utils.data.DataLoader(PaddedTo64(frame, tokenizer, max_length), batch_size=batch_size,
                                         num_workers=2)
    predictions = []
    model.eval()
    with torch.no_grad():
        for batch in loader:
            predictions += model(batch["ids"], batch["mask"], task).argmax(-1).tolist()
    return predictions


def timed(function) -> tuple[float, object]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def compiled_against_plain(model, split, task, batch_size: int, rounds: int, plain_predictions) -> dict:
    """`evaluate_split` with the encoder compiled and not, alternating: the compile's cost, then the
    examples/s of each over `rounds` rounds (one process, so both see the same machine)."""
    plain = model.encoder
    compiled = torch.compile(plain, dynamic=True)

    def examples_per_second(encoder) -> tuple[float, list[int]]:
        model.encoder = encoder
        seconds, (_, predictions) = timed(lambda: evaluate_split(model, split, task.name, task.num_labels,
                                                                batch_size))
        return len(split) / seconds, predictions

    first_pass_seconds, _ = timed(lambda: examples_per_second(compiled))
    speeds, predictions = {"plain": [], "compiled": []}, {}
    for _ in range(rounds):
        for name, encoder in (("plain", plain), ("compiled", compiled)):
            speed, predictions[name] = examples_per_second(encoder)
            speeds[name].append(speed)
    model.encoder = plain
    return {"compile_first_pass_seconds": first_pass_seconds, "rounds": speeds,
            "plain_examples_per_second": statistics.median(speeds["plain"]),
            "compiled_examples_per_second": statistics.median(speeds["compiled"]),
            "compiled_same_predictions": predictions["compiled"] == plain_predictions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--model", help="encoder (default: the packaged MiniLM)")
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--examples", type=int, default=2000, help="dev tweets to score")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--mixed-precision", choices=("no", "bf16"), default="no",
                        help="autocast for the package's side")
    parser.add_argument("--compiled-rounds", type=int, default=0,
                        help="also compare the compiled encoder with the plain one over this many rounds")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    task = load_task(args.task, data_dir=args.data_dir).capped(max_eval_examples=args.examples)
    frame = task.splits["dev"]
    model, tokenizer = build_model({task.name: task.label_names}, args.model)
    original_seconds, original = timed(lambda: original_evaluation(model, tokenizer, frame, task.name,
                                                                   args.batch_size, args.max_length))

    def ours():  # tokenising is part of the package's evaluation, as it is of the original's
        split = encode(tokenizer, frame, args.max_length)
        return split, evaluate_split(model, split, task.name, task.num_labels, args.batch_size)[1]

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.mixed_precision == "bf16"):
        ours_seconds, (split, predictions) = timed(ours)
        predict_seconds, _ = timed(lambda: predict(model, tokenizer, frame["text"].tolist(), task.name,
                                                   args.max_length, args.batch_size))
    agreement = sum(a == b for a, b in zip(original, predictions)) / len(frame)
    summary = {
        "task": task.name, "examples": len(frame), "batch_size": args.batch_size,
        "package_mixed_precision": args.mixed_precision,
        "original_evaluation_examples_per_second": len(frame) / original_seconds,
        "package_evaluate_examples_per_second": len(frame) / ours_seconds,
        "package_predict_examples_per_second": len(frame) / predict_seconds,
        "speed_up": original_seconds / ours_seconds,
        "same_predictions": agreement,  # padding must not change what the model predicts
    }
    if args.compiled_rounds:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.mixed_precision == "bf16"):
            summary["compiled"] = compiled_against_plain(model, split, task, args.batch_size,
                                                         args.compiled_rounds, predictions)
    report(summary, args.output)


if __name__ == "__main__":
    main()
