"""Lesson step 4, training: one loop for multi-task and single-task runs (one task = a baseline).

At each step the sampler picks a task, that task's next batch goes through the shared encoder and
its own head; loss, backward, clip, step, schedule. After each epoch every task is scored on its
dev set, the history is written, the best checkpoint of each task is kept, and the run can resume.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, gather_object, set_seed
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .data import BatchStream, EncodedSplit, Task, batches_per_pass, encode, encode_task, evaluation_batches, load_tasks, pad_batch
from .metrics import majority_baseline, official_metric_name, scores
from .conflict import gradient_cosines
from .files import recover_interrupted_writes, staged_folder, write_atomically, write_json_atomically
from .model import MultiTaskModel, build_model, load_model, predict, read_model_description, restore_weights, save_model
from .sampling import SAMPLERS, task_schedule

CONFIG_FILE, HISTORY_JSON, HISTORY_CSV, RESULTS_FILE = "config.json", "history.json", "history.csv", "results.json"
STATE_FILE = "training_state.pt"


@dataclass
class TrainConfig:
    """Everything that defines a run. The defaults are the original tutorial's recipe."""

    tasks: list[str] = field(default_factory=lambda: ["emotion", "sentiment"])
    model: str | None = None  # hub id or folder; None = the packaged MiniLM (offline)
    pooling: str = "mean"  # "mean", "cls" or "pooler" (the tutorial's)
    sampler: str = "proportional"
    temperature: float = 2.0  # only for sampler="temperature"
    epochs: int = 5
    batch_size: int = 32
    eval_batch_size: int = 128
    learning_rate: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_length: int = 64
    seed: int = 77
    max_train_examples: int | None = None  # per task; None = all
    max_eval_examples: int | None = None  # per task, dev and test; only for quick demos (scores become estimates)
    group_by_length: bool = True  # shuffled length buckets: same data and task mix, less padding
    mixed_precision: str = "no"  # "no", "bf16" or "fp16"
    gradient_probe_batches: int = 4  # per epoch, batches per task for the gradient-conflict probe; 0 = off
    data_dir: str | None = None  # an existing copy of TweetEval's datasets/ folder
    cache_dir: str | None = None
    base_url: str | None = None

    def __post_init__(self):
        # A Path or a single task name is accepted; stored as plain strings, the config round-trips through JSON.
        self.tasks = [str(task) for task in ([self.tasks] if isinstance(self.tasks, (str, Path)) else self.tasks)]
        for name in ("model", "data_dir", "cache_dir", "base_url"):
            if getattr(self, name) is not None:
                setattr(self, name, str(getattr(self, name)))
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be at least 1, got {self.epochs} and {self.batch_size}")

    def data_location(self) -> dict:
        return {"data_dir": self.data_dir, "cache_dir": self.cache_dir, "base_url": self.base_url}


@dataclass
class TrainingRun:
    """What `fit` returns: the run's folder, its per-epoch history and its final results."""

    folder: Path
    history: pd.DataFrame
    results: dict


def results_table(results: dict) -> pd.DataFrame:
    """One row per task: its official metric, best epoch, dev and test scores, and the majority baseline."""
    rows = [{"task": task, "metric": result["official_metric"], "best epoch": result["best_epoch"],
             "dev": result["dev"]["official"], "test": result["test"]["official"],
             "test accuracy": result["test"]["accuracy"], "majority baseline (test)": result["test_majority_baseline"]["official"]}
            for task, result in results.items()]
    return pd.DataFrame(rows).set_index("task")


def load_run_tasks(config: TrainConfig) -> dict[str, Task]:
    """The run's tasks, with its caps on training and evaluation examples applied."""
    return {name: task.capped(config.max_train_examples, config.max_eval_examples, config.seed)
            for name, task in load_tasks(config.tasks, **config.data_location()).items()}


def load_history(folder: str | Path) -> pd.DataFrame:
    """A run's history: one row per (epoch, task) with train loss, dev scores and speed."""
    return pd.DataFrame(json.loads((Path(folder) / HISTORY_JSON).read_text(encoding="utf-8")))


def load_config(folder: str | Path) -> TrainConfig:
    path = Path(folder) / CONFIG_FILE
    try:
        return TrainConfig(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder} is not a training run: {CONFIG_FILE} is missing") from None
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(f"{path} is damaged or was not written by mtl_tutorial: {error}") from None


@torch.inference_mode()
def evaluate(model: MultiTaskModel, split: EncodedSplit, task: str, num_labels: int, pad_id: int,
             batch_size: int = 128, accelerator: Accelerator | None = None) -> tuple[dict, list[int]]:
    """Score one task on one encoded split: mean loss, accuracy, macro-F1/recall, official score.

    Returns (scores, predictions in the split's order). Under several processes each scores its
    share of the batches and the results are gathered.
    """
    model.eval()
    device = accelerator.device if accelerator else next(model.parameters()).device
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    found, loss_sum = [], 0.0
    for indices in evaluation_batches(split, batch_size)[rank::world]:
        batch = pad_batch([split.input_ids[i] for i in indices], pad_id, [split.labels[i] for i in indices])
        batch = {key: value.to(device) for key, value in batch.items()}
        logits = model(batch["input_ids"], batch["attention_mask"], task).float()
        loss_sum += F.cross_entropy(logits, batch["labels"], reduction="sum").item()
        found.extend(zip(indices, logits.argmax(-1).tolist()))
    if accelerator and world > 1:
        found = gather_object(found)
        loss_sum = sum(gather_object([loss_sum]))
    predictions = [0] * len(split)
    for index, label in found:
        predictions[index] = label
    result = {"loss": loss_sum / len(split), **scores(task, split.labels, predictions, num_labels)}
    return result, predictions


def make_accelerator(mixed_precision: str = "no") -> Accelerator:
    """Accelerate picks the device (GPU if any) and, under torchrun or `accelerate launch`, the process."""
    # Each step trains one head only, so under DDP the other heads get no gradient that step.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    # Accelerate starts CPU processes (gloo) only when told cpu=True: without it, two processes that
    # torchrun started on a machine without a GPU would each train alone and overwrite each other's files.
    several_cpu_processes = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    return Accelerator(mixed_precision=mixed_precision, cpu=several_cpu_processes, kwargs_handlers=[ddp])


def prepare_folder(folder: Path, config: TrainConfig, resume: bool) -> bool:
    """Check that the run folder is new, empty, or holds this very run; return True in the last case."""
    if not (folder / CONFIG_FILE).exists():
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise ValueError(f"{folder} exists and is not a training run (it has no {CONFIG_FILE}); choose a new or empty folder")
        return False
    saved = load_config(folder)
    differences = [f"{key} is {value!r} here but {getattr(saved, key)!r} there"
                   for key, value in dataclasses.asdict(config).items() if getattr(saved, key) != value]
    if differences:
        raise ValueError(f"{folder} already holds a different run ({'; '.join(differences)}); choose another folder")
    if not resume:
        raise ValueError(f"{folder} already holds this run: pass resume=True (--resume) to continue it")
    return True


def make_optimizer(model, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW from torch, fused into one kernel: the same update, several times faster on CPU and GPU."""
    return torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)


def probe_gradient_conflict(model: MultiTaskModel, encoded: dict, pad_id: int, config: TrainConfig, epoch: int) -> dict[str, float]:
    """For each task, the mean cosine between its encoder gradient and the other tasks' (see conflict.py)."""
    if len(encoded) < 2 or config.gradient_probe_batches < 1:
        return {}
    pairs = gradient_cosines(model, {name: splits["train"] for name, splits in encoded.items()}, pad_id,
                             config.gradient_probe_batches, config.batch_size, seed=config.seed + epoch)
    return {name: sum(value for pair, value in pairs.items() if name in pair.split("~")) / (len(encoded) - 1) for name in encoded}


def train_step(model, batch: dict, task: str, optimizer, scheduler, accelerator: Accelerator, max_grad_norm: float) -> torch.Tensor:
    """One step on one task: forward through the encoder and the task's head, backward, clip, update.

    Clipping comes BEFORE the optimizer step (the original tutorial clipped after it, to no effect).
    """
    logits = model(batch["input_ids"], batch["attention_mask"], task)
    loss = F.cross_entropy(logits.float(), batch["labels"])
    accelerator.backward(loss)
    accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def fit(config: TrainConfig, folder: str | Path, resume: bool = False, on_epoch_end=None,
        progress: bool = True, accelerator: Accelerator | None = None) -> TrainingRun:
    """Train one shared encoder on `config.tasks`, scoring every task on dev after every epoch.

    Writes to `folder`: config.json, history.json/csv (after every epoch), best/<task>/ (the best
    checkpoint of each task by its official dev score), last/ (to resume from) and results.json
    (each task's test score from its own best checkpoint). `on_epoch_end(history)` is called
    with the history so far, e.g. to redraw a plot.
    """
    folder = Path(folder)
    accelerator = accelerator or make_accelerator(config.mixed_precision)
    resuming = prepare_folder(folder, config, resume)
    if resuming and accelerator.is_main_process:
        for place in (folder, folder / "best"):
            recover_interrupted_writes(place)
    accelerator.wait_for_everyone()  # every process has checked the folder before it is written

    set_seed(config.seed)
    tasks = load_run_tasks(config)
    model, tokenizer = build_model({name: task.label_names for name, task in tasks.items()}, config.model, config.pooling)
    longest = model.encoder.config.max_position_embeddings
    if config.max_length > longest:
        raise ValueError(f"max_length {config.max_length} is longer than this encoder's {longest} positions")
    if accelerator.is_main_process:  # only now: a typo in a task or model name leaves no folder behind
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomically(dataclasses.asdict(config), folder / CONFIG_FILE)
    encoded = {name: encode_task(tokenizer, task, config.max_length) for name, task in tasks.items()}
    rank, world = accelerator.process_index, accelerator.num_processes
    streams = {name: BatchStream(encoded[name]["train"], config.batch_size, tokenizer.pad_token_id, config.seed,
                                 config.group_by_length, rank, world) for name in tasks}
    sizes = {name: len(encoded[name]["train"]) for name in tasks}
    steps_per_epoch = sum(batches_per_pass(size, config.batch_size * world) for size in sizes.values())

    optimizer = make_optimizer(model, config)
    total_steps = steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    history, best, start_epoch = [], {}, 1
    if resuming and (folder / "last" / STATE_FILE).exists():
        state = restore_checkpoint(folder / "last", model, optimizer, scheduler, streams)
        history, best, start_epoch = state["history"], state["best"], state["epoch"] + 1
    model, optimizer = accelerator.prepare(model, optimizer)

    for epoch in range(start_epoch, config.epochs + 1):
        # dropout: a resumed epoch draws the same masks, and each process its own
        torch.manual_seed(config.seed + epoch + 10_000 * accelerator.process_index)
        model.train()
        schedule = task_schedule(sizes, steps_per_epoch, config.sampler, config.seed, config.temperature, epoch, config.epochs)
        loss_sum = {name: torch.zeros((), device=accelerator.device) for name in tasks}
        examples = {name: 0 for name in tasks}
        tokens, padded_tokens = 0, 0
        started = time.perf_counter()
        for task in tqdm(schedule, desc=f"epoch {epoch}/{config.epochs}", disable=not (progress and accelerator.is_main_process)):
            batch = next(streams[task])
            size, width = batch["attention_mask"].shape
            tokens += size * width  # counted on the CPU: reading a GPU tensor would wait for the GPU
            padded_tokens += size * width - int(batch["attention_mask"].sum())
            batch = {key: value.to(accelerator.device, non_blocking=True) for key, value in batch.items()}
            loss = train_step(model, batch, task, optimizer, scheduler, accelerator, config.max_grad_norm)
            loss_sum[task] += loss * size  # stays on the device: no host sync per step
            examples[task] += size
        seconds = time.perf_counter() - started
        total = accelerator.reduce(torch.tensor([sum(examples.values()), tokens, padded_tokens], device=accelerator.device), "sum")
        cosines = probe_gradient_conflict(accelerator.unwrap_model(model), encoded, tokenizer.pad_token_id, config, epoch)
        for name, task in tasks.items():
            train_loss = accelerator.reduce(loss_sum[name], "sum").item()
            train_examples = int(accelerator.reduce(torch.tensor(examples[name], device=accelerator.device), "sum"))
            # the bare model: under DDP a forward pass syncs buffers, and processes score different numbers of batches
            dev, _ = evaluate(accelerator.unwrap_model(model), encoded[name]["dev"], name, task.num_labels,
                              tokenizer.pad_token_id, config.eval_batch_size, accelerator)
            improved = dev["official"] > best.get(name, {}).get("official", -1.0)
            if improved:
                best[name] = {"epoch": epoch, **dev}
                if accelerator.is_main_process:
                    save_model(accelerator.unwrap_model(model), tokenizer, folder / "best" / name, {"epoch": epoch, "dev": dev})
            history.append({
                "epoch": epoch, "task": name, "train_loss": train_loss / max(train_examples, 1), "train_examples": train_examples,
                **{f"dev_{key}": value for key, value in dev.items()}, "best_so_far": improved,
                "seconds": seconds, "examples_per_second": int(total[0]) / seconds,
                "tokens_per_second": (int(total[1]) - int(total[2])) / seconds, "pad_fraction": int(total[2]) / max(int(total[1]), 1),
                **({"gradient_cosine": cosines[name]} if cosines else {}),
            })
        if accelerator.is_main_process:
            save_checkpoint(folder, accelerator.unwrap_model(model), tokenizer, optimizer, scheduler, streams, best, history, epoch)
            save_history(folder, history)
        accelerator.wait_for_everyone()
        if on_epoch_end and accelerator.is_main_process:
            on_epoch_end(pd.DataFrame(history))

    results = test_best_checkpoints(folder, accelerator.unwrap_model(model), tasks, encoded, best, tokenizer.pad_token_id,
                                    config.eval_batch_size, accelerator)
    if accelerator.is_main_process:
        write_json_atomically(results, folder / RESULTS_FILE)
    accelerator.wait_for_everyone()
    return TrainingRun(folder, pd.DataFrame(history), results)


def save_history(folder: Path, history: list[dict]) -> None:
    write_json_atomically(history, folder / HISTORY_JSON)
    write_atomically(folder / HISTORY_CSV, lambda temporary: pd.DataFrame(history).to_csv(temporary, index=False))


def save_checkpoint(folder: Path, model, tokenizer, optimizer, scheduler, streams, best, history, epoch) -> None:
    """Everything needed to continue after `epoch`: weights, optimizer, schedule, data positions, history.

    The history travels in the checkpoint, so a crash between writing last/ and history.json loses nothing.
    """
    state = {"epoch": epoch, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "streams": {name: stream.state_dict() for name, stream in streams.items()}, "best": best, "history": history}
    with staged_folder(folder / "last") as staging:
        save_model(model, tokenizer, staging)
        torch.save(state, staging / STATE_FILE)


def restore_checkpoint(folder: Path, model, optimizer, scheduler, streams) -> dict:
    """Load last/ into the model, optimizer, schedule and data streams; return the saved state."""
    try:
        restore_weights(model, folder)
        state = torch.load(folder / STATE_FILE, weights_only=True)  # tensors, numbers and strings only: runs no code
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        for name, stream in streams.items():
            stream.load_state_dict(state["streams"][name])
        state["epoch"], state["best"], state["history"]
    except Exception as error:  # torch, pickle and a foreign file each raise their own kinds
        reason = (str(error).splitlines() or [""])[0][:300]
        raise OSError(f"cannot resume from {folder}: it is damaged or not this run's checkpoint "
                      f"({error.__class__.__name__}: {reason})") from error
    return state


def test_best_checkpoints(folder: Path, model: MultiTaskModel, tasks: dict[str, Task], encoded, best: dict, pad_id: int,
                          batch_size: int, accelerator: Accelerator | None = None) -> dict:
    """Score each task on test with its OWN best checkpoint (the epoch with its best dev score)."""
    results = {}
    for name, task in tasks.items():
        restore_weights(model, folder / "best" / name)
        test, _ = evaluate(model, encoded[name]["test"], name, task.num_labels, pad_id, batch_size, accelerator)
        majority = majority_baseline(name, encoded[name]["train"].labels, encoded[name]["test"].labels, task.num_labels)
        results[name] = {"official_metric": official_metric_name(name), "best_epoch": best[name]["epoch"],
                         "dev": best[name], "test": test, "test_examples": len(encoded[name]["test"]),
                         "test_majority_baseline": majority}
    return results


def evaluate_run(folder: str | Path, split: str = "test") -> pd.DataFrame:
    """Score every task of a run on `split`, each with its own best checkpoint: one row per task."""
    config = load_config(folder)
    tasks = load_run_tasks(config)
    rows = []
    for name, task in tasks.items():
        model, tokenizer = load_model(Path(folder) / "best" / name)
        split_data = encode(tokenizer, task.splits[split], config.max_length)
        result, _ = evaluate(model, split_data, name, task.num_labels, tokenizer.pad_token_id, config.eval_batch_size)
        rows.append({"task": name, "split": split, "official_metric": official_metric_name(name), **result})
    return pd.DataFrame(rows)


def run_task_names(folder: Path) -> list[str]:
    """The task names of a run, in training order, as its saved models record them (not its config,
    whose tasks may be folders)."""
    saved = sorted(path for path in (folder / "best").iterdir() if path.is_dir() and not path.name.startswith("."))
    if not saved:
        raise OSError(f"run {folder} has no saved model yet: its best/ folder is empty")
    return list(read_model_description(saved[0])["task_labels"])


def predict_run(folder: str | Path, texts: list[str], task: str | None = None, max_length: int = 64) -> pd.DataFrame:
    """Label texts with a run's best checkpoint of each task (or with a saved model folder)."""
    folder = Path(folder)
    if not (folder / "best").is_dir():
        model, tokenizer = load_model(folder)
        return predict(model, tokenizer, texts, task, max_length)
    names = run_task_names(folder)
    if task is not None and task not in names:  # a name, never a path: "--task ../x" reads nothing
        raise KeyError(f"run {folder} has no task {task!r}; its tasks are {names}")
    frames = []
    for name in [task] if task else names:
        model, tokenizer = load_model(folder / "best" / name)
        frames.append(predict(model, tokenizer, texts, name, max_length))
    return pd.concat(frames, ignore_index=True)
