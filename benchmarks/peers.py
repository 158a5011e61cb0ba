"""Training speed against the tools a user would pick instead: `transformers.Trainer` and tasknet.

(a) single task (emotion): `transformers.Trainer` with its best settings for the job (an
    AutoModelForSequenceClassification, DataCollatorWithPadding, length-grouped sampling, fused AdamW, no
    evaluation) against `mtl_tutorial.fit` single-task;
(b) multi-task (emotion + sentiment): tasknet (PyPI `tasknet`, a multi-task Trainer) against `fit` multi-task.

Every loop trains the same encoder on the same capped tweets with the same batch size, number of steps,
learning rate (linear schedule, 10% warm-up), clipping and seed. Only the training steps are timed: model
loading, tokenising and evaluation are left out of every loop. Each loop runs in its own process (its own peak
memory), peer and `fit` take turns, `--rounds` times, and the medians are reported. Run by hand on a quiet
machine; results go to benchmarks/RESULTS.md.

    python benchmarks/peers.py --data-dir ../shared/data/tweeteval --rounds 3 --output peers-cpu.json

tasknet is not a dependency of the package: `pip install --no-deps tasknet` then `pip install datasets
evaluate lazy_load easydict frozendict funcy magicattr` (so that torch and transformers stay as they are).
When tasknet cannot run, its row holds `peer_error` (the error and what was tried) instead of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainerCallback, TrainingArguments, set_seed)

from mtl_tutorial.batching import batches_per_pass
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.model import resolve_encoder
from mtl_tutorial.runs import load_run_tasks
from mtl_tutorial.train import fit
from step_cost import machine

# Each comparison: the peer's loop, `fit`'s loop, and the tasks both train.
COMPARISONS = {
    "trainer": {"peer": "transformers.Trainer", "fit": "fit-single-task", "tasks": ["emotion"]},
    "tasknet": {"peer": "tasknet", "fit": "fit-multi-task", "tasks": ["emotion", "sentiment"]},
}
LOOPS = (*COMPARISONS, *(comparison["fit"] for comparison in COMPARISONS.values()))
# `import tasknet` loads these evaluate metrics from the hub; offline, local stand-ins are used instead.
TASKNET_METRICS = ("seqeval", "bleu", "f1")
TASKNET_TRIED = ["pip install --no-deps tasknet, then its light dependencies (datasets, evaluate, lazy_load, "
                 "easydict, frozendict, funcy, magicattr) with torch and transformers pinned",
                 f"local stand-in evaluate metrics {', '.join(TASKNET_METRICS)} (unused by classification), "
                 "in a temporary working folder, HF_DATASETS_OFFLINE=1 and HF_EVALUATE_OFFLINE=1"]


def run_config(loop: str, args) -> TrainConfig:
    """The run every loop of a comparison trains: its tasks, caps, batch size, rate, seed and epochs."""
    tasks = next(comparison["tasks"] for name, comparison in COMPARISONS.items()
                 if loop in (name, comparison["fit"]))
    return TrainConfig(tasks=tasks, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, seed=args.seed,
                       max_train_examples=args.max_train_examples, max_eval_examples=32,
                       gradient_probe_batches=0, data_dir=args.data_dir)


def steps_of(config: TrainConfig) -> int:
    """`fit`'s number of steps for this run: one batch per step, every task's batches, each epoch."""
    sizes = [len(task.splits["train"]) for task in load_run_tasks(config).values()]
    return config.epochs * sum(batches_per_pass(size, config.batch_size) for size in sizes)


def speed(examples: int, real_tokens: int, tokens: int, seconds: float) -> dict:
    return {"examples": examples, "real_tokens": real_tokens, "seconds": seconds,
            "examples_per_second": examples / seconds, "tokens_per_second": real_tokens / seconds,
            "pad_fraction": 1 - real_tokens / tokens}


def fit_loop(config: TrainConfig) -> dict:
    """`mtl_tutorial.fit`: its history times each epoch's training steps only (not scoring, not saving)."""
    with tempfile.TemporaryDirectory() as folder:
        history = fit(config, Path(folder) / "run", progress=False).history
    epochs = history.drop_duplicates("epoch")  # one row per task and epoch; the speed columns are per epoch
    real = epochs["tokens_per_second"] * epochs["seconds"]
    tokens = real / (1 - epochs["pad_fraction"])
    examples = int(history["train_examples"].sum())
    return speed(examples, round(real.sum()), round(tokens.sum()), float(epochs["seconds"].sum()))


class StepClock(TrainerCallback):
    """Times a Trainer's training steps: from the start of training to the end of the last step."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == state.max_steps:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds = time.perf_counter() - self.started


class CountingCollator:
    """Wraps a collator and records each batch's size, width and real tokens, in the order they are made."""

    def __init__(self, collator, trimmed: bool = False):
        self.collator, self.trimmed, self.batches = collator, trimmed, []

    def __call__(self, features):
        batch = self.collator(features)
        mask = batch["attention_mask"]
        # tasknet pads to max_length, then its model cuts each batch to its longest tweet
        width = int(mask.sum(-1).max()) if self.trimmed else mask.shape[-1]
        self.batches.append((len(mask), width, int(mask.sum())))
        return batch

    def counted(self, steps: int, seconds: float) -> dict:
        """The speed of the first `steps` batches (a data loader may make one more than is trained on)."""
        batches = self.batches[:steps]
        return speed(sum(size for size, _, _ in batches), sum(real for _, _, real in batches),
                     sum(size * width for size, width, _ in batches), seconds)


def trainer_arguments(config: TrainConfig, steps: int, folder: str, **more) -> dict:
    """The Trainer settings every peer shares: `fit`'s batch size, steps, schedule, clipping and seed; no
    evaluation, saving or logging during the steps; fused AdamW."""
    return dict(output_dir=folder, per_device_train_batch_size=config.batch_size, max_steps=steps,
                learning_rate=config.learning_rate, lr_scheduler_type="linear",
                warmup_steps=config.warmup_ratio,  # transformers 5: a float below 1 is a share of the steps
                weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm,
                optim="adamw_torch_fused", seed=config.seed, eval_strategy="no", save_strategy="no",
                logging_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0, **more)


def trainer_loop(config: TrainConfig, steps: int) -> dict:
    """`transformers.Trainer` on one task, as its documentation recommends for speed."""
    [task] = load_run_tasks(config).values()
    set_seed(config.seed)
    encoder = resolve_encoder(config.model)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=task.num_labels)
    frame = task.splits["train"]
    encoded = tokenizer(frame["text"].tolist(), truncation=True, max_length=config.max_length)
    examples = [{**{key: values[row] for key, values in encoded.items()}, "labels": label}
                for row, label in enumerate(frame["label"].tolist())]
    collator, clock = CountingCollator(DataCollatorWithPadding(tokenizer)), StepClock()
    with tempfile.TemporaryDirectory() as folder:
        arguments = TrainingArguments(**trainer_arguments(config, steps, folder,
                                                          train_sampling_strategy="group_by_length"))
        trainer = Trainer(model=model, args=arguments, train_dataset=examples, data_collator=collator,
                          processing_class=tokenizer, callbacks=[clock])
        trainer.train()
    return collator.counted(steps, clock.seconds)


def write_metric_stand_ins(folder: Path) -> None:
    """Minimal local evaluate metrics under the names tasknet loads when imported (none is used here)."""
    for name in TASKNET_METRICS:
        (folder / name).mkdir()
        (folder / name / f"{name}.py").write_text(
            "import datasets\nimport evaluate\n\n\n"
            "class StandIn(evaluate.Metric):\n"
            "    def _info(self):\n"
            "        features = datasets.Features({'predictions': datasets.Value('int64'), "
            "'references': datasets.Value('int64')})\n"
            "        return evaluate.MetricInfo(description='stand-in', citation='', inputs_description='', "
            "features=features)\n\n"
            "    def _compute(self, predictions, references):\n"
            "        return {}\n")


def tasknet_loop(config: TrainConfig, steps: int) -> dict:
    """tasknet's multi-task Trainer: one task per step, drawn in proportion to the tasks' batches."""
    tasks = load_run_tasks(config)
    with tempfile.TemporaryDirectory() as folder:
        write_metric_stand_ins(Path(folder))
        os.chdir(folder)
        import datasets
        import tasknet

        def dataset_of(task):
            features = datasets.Features({"text": datasets.Value("string"),
                                          "label": datasets.ClassLabel(names=task.label_names)})
            splits = {"train": "train", "validation": "dev", "test": "test"}
            return datasets.DatasetDict({
                split: datasets.Dataset.from_pandas(task.splits[name][["text", "label"]], features=features,
                                                    preserve_index=False)
                for split, name in splits.items()})

        set_seed(config.seed)
        peer_tasks = [tasknet.Classification(dataset=dataset_of(task), name=name, s1="text", y="label")
                      for name, task in tasks.items()]
        hparams = {**trainer_arguments(config, steps, str(Path(folder) / "out")),
                   "model_name": resolve_encoder(config.model), "max_length": config.max_length}
        model = tasknet.Model(peer_tasks, hparams)
        clock = StepClock()
        trainer = tasknet.Trainer(model, peer_tasks, hparams, callbacks=[clock])
        trainer.data_collator = collator = CountingCollator(trainer.data_collator, trimmed=True)
        trainer.train()
    return collator.counted(steps, clock.seconds)


def measure(loop: str, args) -> dict:
    """One loop's speed and peak memory, measured in this process; a peer that fails reports its error."""
    config = run_config(loop, args)
    steps = steps_of(config)
    try:
        if loop == "trainer":
            result = trainer_loop(config, steps)
        elif loop == "tasknet":
            result = tasknet_loop(config, steps)
        else:
            result = fit_loop(config)
    except Exception as error:  # a peer that cannot run here: keep its error and what was tried
        if loop not in COMPARISONS:
            raise
        tried = TASKNET_TRIED if loop == "tasknet" else []
        return {"loop": loop, "steps": steps, "peer_error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc()[-3000:], "tried": tried}
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return {"loop": loop, "steps": steps, **result}


FIGURES = ("examples_per_second", "tokens_per_second", "pad_fraction", "seconds")


def medians(runs: list[dict]) -> dict:
    row = {key: statistics.median(run[key] for run in runs) for key in FIGURES}
    row["peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs)
    if all("peak_cuda_mib" in run for run in runs):
        row["peak_cuda_mib"] = max(run["peak_cuda_mib"] for run in runs)
    return {**row, "steps": sorted({run["steps"] for run in runs}), "runs": runs}


def summarise(runs: list[dict], peers: list[str]) -> dict:
    """Per comparison: the medians of the peer and of `fit`, and `fit`'s speed over the peer's, from medians
    and round by round (same-round ratios are the ones to trust on a machine whose speed drifts)."""
    summary = {}
    for name in peers:
        comparison = COMPARISONS[name]
        peer_runs = [run for run in runs if run["loop"] == name]
        fit_runs = [run for run in runs if run["loop"] == comparison["fit"]]
        row = {"peer": comparison["peer"], "tasks": comparison["tasks"], "fit": medians(fit_runs)}
        failed = [run for run in peer_runs if "peer_error" in run]
        if failed:
            row["peer_error"] = failed[0]["peer_error"]
            row["tried"], row["traceback"] = failed[0]["tried"], failed[0]["traceback"]
        else:
            row[name] = medians(peer_runs)
            row["fit_speed_up"] = row["fit"]["examples_per_second"] / row[name]["examples_per_second"]
            row["fit_speed_up_by_round"] = [mine["examples_per_second"] / theirs["examples_per_second"]
                                            for mine, theirs in zip(fit_runs, peer_runs)]
            row["fit_memory_ratio"] = row["fit"]["peak_rss_mib"] / row[name]["peak_rss_mib"]
        summary[name] = row
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--model", help="encoder (default: the packaged MiniLM)")
    parser.add_argument("--peers", nargs="+", choices=list(COMPARISONS), default=list(COMPARISONS))
    parser.add_argument("--max-train-examples", type=int, default=1024, help="per task")
    parser.add_argument("--epochs", type=int, default=1, help="steps = epochs x the tasks' batches")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=77)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--loop", choices=LOOPS, help=argparse.SUPPRESS)  # one measurement, in a child
    args = parser.parse_args()
    if args.loop:
        print(json.dumps(measure(args.loop, args)))
        return
    settings = {key: value for key, value in vars(args).items() if key not in ("loop", "output", "peers")}
    child = [sys.executable, __file__, *(word for key, value in settings.items() if value is not None
                                         for word in (f"--{key.replace('_', '-')}", str(value)))]
    # offline: tasknet's imports must find the local stand-in metrics, and nothing else from the hub
    environment = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}
    started, runs = machine(), []
    for round_number in range(args.rounds):
        for name in args.peers:
            pair = [name, COMPARISONS[name]["fit"]]
            for loop in pair if round_number % 2 == 0 else pair[::-1]:  # each goes first in every other round
                finished = subprocess.run(child + ["--loop", loop], capture_output=True, text=True,
                                          env=environment)
                if finished.returncode:
                    sys.exit(f"{loop} failed:\n{finished.stderr[-3000:]}")
                runs.append(json.loads(finished.stdout.strip().splitlines()[-1]))
                shown = runs[-1].get("peer_error") or f"{runs[-1]['examples_per_second']:.1f} examples/s"
                print(f"{loop}: {shown}", file=sys.stderr)
    result = {"machine": started, "load_average_at_end": os.getloadavg(), "settings": settings,
              "comparisons": summarise(runs, args.peers)}
    text = json.dumps(result, indent=1, default=str)
    if args.output:
        args.output.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
