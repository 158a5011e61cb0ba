"""Lesson step 4, training: one loop for multi-task and single-task runs (one task = a baseline).

At each step the sampler picks a task, that task's next batch goes through the shared encoder and
its own head; loss, backward, clip, step, schedule. Or (strategy "all-tasks") every step takes a batch
of every task and combines their losses or gradients (combine.py). After each epoch every task is
scored on its dev set, the history is written, the best checkpoint of each task is kept, and the run
can resume. `fit` reads top to bottom; every step of it is a function below it.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, broadcast, set_seed
from torch import nn
from tqdm.auto import tqdm

from .batching import BatchStream, EncodedSplit, batches_per_pass, encode_task, to_device
from .combine import LOG_VARIANCE_LEARNING_RATE, GradientAggregation, make_combiner
from .config import TrainConfig
from .conflict import probe_gradient_conflict
from .dependencies import check_requirements
from .data import Task
from .evaluate import evaluate_split, test_best_checkpoints
from .hardware import warn_if_precision_is_emulated
from .model import MultiTaskModel
from .runs import (TrainingRun, TrainingState, exclusive_run_folder, has_checkpoint, load_run_tasks,
                   prepare_folder, recover_run_folder, restore_checkpoint, save_best, save_checkpoint,
                   save_config, save_history, save_results, saved_best_epoch)
from .sampling import SamplingEpoch, plan_epoch
from .sharing import build_shared_model
from .tracking import StepLog, log_epoch, start_tracking, stop_tracking


def make_accelerator(mixed_precision: str = "no", report_to: str | None = None,
                     folder: Path | None = None) -> Accelerator:
    """Accelerate picks the device (GPU if any) and, under torchrun or `accelerate launch`, the process;
    with `report_to`, its tracker logs into the run `folder` (tracking.py)."""
    # Each step trains one head only, so under DDP the other heads get no gradient that step.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    # Accelerate starts CPU processes (gloo) only when told cpu=True: without it, two processes that
    # torchrun started on a machine without a GPU would each train alone and overwrite each other's files.
    several_cpu_processes = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    return Accelerator(mixed_precision=mixed_precision, cpu=several_cpu_processes, kwargs_handlers=[ddp],
                       log_with=report_to, project_dir=folder if report_to else None)


def make_optimizer(model, config: TrainConfig, combiner: nn.Module | None = None) -> torch.optim.AdamW:
    """AdamW from torch, fused into one kernel: the same update, several times faster on CPU and GPU.

    Learned task weights (uncertainty weighting's log-variances) are a second group, at their own rate.
    """
    groups = [{"params": model.trained_parameters()}]  # with hard sharing: every parameter, in order
    if combiner is not None and list(combiner.parameters()):
        groups.append({"params": list(combiner.parameters()), "lr": LOG_VARIANCE_LEARNING_RATE,
                       "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)


def linear_warmup_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """transformers' `get_linear_schedule_with_warmup`: the rate rises from 0 over `warmup_steps`, then falls
    to 0 at `total_steps`. Imported when a run starts, not with the package: it loads PEFT (seconds)."""
    from transformers import get_linear_schedule_with_warmup  # transformers.trainer_utils imports peft

    return get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)


@dataclass
class Run:
    """What `fit` works with from its first epoch to its last: the settings, the folder it writes, Accelerate,
    the tasks and their encoded splits, the state a checkpoint keeps, and the model as it trains."""

    config: TrainConfig
    folder: Path
    accelerator: Accelerator
    tasks: dict[str, Task]
    encoded: dict[str, dict[str, EncodedSplit]]
    state: TrainingState
    steps_per_epoch: int
    model: nn.Module  # state.model as it trains: wrapped by Accelerate (DDP over processes, autocast)
    progress: bool = True

    @property
    def sizes(self) -> dict[str, int]:
        return {name: len(splits["train"]) for name, splits in self.encoded.items()}

    @property
    def step(self) -> int:
        """The optimizer steps taken so far, over all epochs: the schedule counts them (a checkpoint too)."""
        return self.state.scheduler.last_epoch


@dataclass
class EpochRecord:
    """What one epoch measured, for its history rows (the sums are on the device: no host sync per step)."""

    epoch: int
    loss_sum: dict[str, torch.Tensor]
    weight_sum: dict[str, torch.Tensor]
    examples: dict[str, int]
    steps: int
    tokens: int = 0
    padded_tokens: int = 0
    seconds: float = 0.0
    probabilities: dict[str, float] = field(default_factory=dict)  # the sampler's mix; none under all-tasks
    cosines: dict[str, float] = field(default_factory=dict)  # the gradient probe's, if it ran
    dev: dict[str, dict] = field(default_factory=dict)  # each task's dev scores
    improved: list[str] = field(default_factory=list)  # the tasks whose dev score is their best so far


def fit(config: TrainConfig, folder: str | Path, resume: bool = False, on_epoch_end=None,
        progress: bool = True, accelerator: Accelerator | None = None) -> TrainingRun:
    """Train one shared encoder on `config.tasks`, scoring every task on dev after every epoch.

    Writes to `folder`: config.json, history.json/csv (after every epoch), best/<task>/ (the best
    checkpoint of each task by its official dev score), last/ (to resume from) and results.json
    (each task's test score from its own best checkpoint). `on_epoch_end(history)` is called
    with the history so far, e.g. to redraw a plot. One process at a time may train into a folder.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"fit needs a TrainConfig, got {type(config).__name__}: e.g. "
                        "fit(TrainConfig(tasks=[...]), folder) or fit(mtl.lesson_config(), folder)")
    check_requirements(config)  # a missing optional package stops the run here, in one line
    folder = Path(folder)
    accelerator = accelerator or make_accelerator(config.mixed_precision, config.report_to, folder)
    warn_if_precision_is_emulated(config.mixed_precision, accelerator)
    main = accelerator.is_main_process
    with exclusive_run_folder(folder) if main else contextlib.nullcontext():
        run = prepare_run(folder, config, resume, accelerator, progress)
        state = run.state
        start_tracking(accelerator, config, run.step)  # with report_to: the curves also go to RUN/logs/
        for epoch in range(state.epoch + 1, config.epochs + 1):
            # dropout: a resumed epoch draws the same masks, and each process its own
            torch.manual_seed(config.seed + epoch + 10_000 * accelerator.process_index)
            probabilities, schedule = epoch_plan(run, epoch)
            record = train_one_epoch(run, epoch, schedule)
            record.probabilities = probabilities
            record.cosines = probe_gradient_conflict(state.model, run.encoded, config, epoch)
            record.dev = score_dev(run)
            record.improved = keep_best(state.best, record.dev, epoch)
            state.history += history_rows(run, record)
            log_epoch(accelerator, state.history[-len(run.tasks):], run.step)
            state.epoch = epoch
            if main:
                save_epoch(folder, state, record.improved)
            accelerator.wait_for_everyone()
            if on_epoch_end and main:
                on_epoch_end(pd.DataFrame(state.history))
        stop_tracking(accelerator)

        results = test_best_checkpoints(folder, state.model, run.encoded, state.best, config.eval_batch_size,
                                        accelerator)
        if main:
            save_results(folder, results)
        accelerator.wait_for_everyone()
        return TrainingRun(folder, pd.DataFrame(state.history), results)


def prepare_run(folder: Path, config: TrainConfig, resume: bool, accelerator: Accelerator,
                progress: bool) -> Run:
    """Check the folder; load and encode the tasks; build the model, the batch streams, the combiner, the
    optimizer and its schedule; restore the last checkpoint when resuming; hand the model to Accelerate."""
    resuming = prepare_folder(folder, config, resume)
    if resuming and accelerator.is_main_process:
        recover_run_folder(folder)
    accelerator.wait_for_everyone()  # every process has checked the folder before it is written

    set_seed(config.seed)
    tasks = load_run_tasks(config)
    model, tokenizer = build_shared_model({name: task.label_names for name, task in tasks.items()}, config)
    check_run(config, tasks, model)
    if accelerator.is_main_process:  # only now: a typo in a task or model name leaves no folder behind
        folder.mkdir(parents=True, exist_ok=True)
        save_config(folder, config)
    encoded = {name: encode_task(tokenizer, task, config.max_length) for name, task in tasks.items()}
    rank, world = accelerator.process_index, accelerator.num_processes
    streams = {name: BatchStream(encoded[name]["train"], config.batch_size, config.seed,
                                 config.group_by_length, rank, world) for name in tasks}
    steps_per_epoch = sum(batches_per_pass(len(encoded[name]["train"]), config.batch_size * world)
                          for name in tasks)
    combiner = None
    if config.strategy == "all-tasks":  # a batch of every task per step; an epoch has sampling's batches
        steps_per_epoch = -(-steps_per_epoch // len(tasks))
        combiner = make_combiner(config.combine, len(tasks)).to(accelerator.device)

    optimizer = make_optimizer(model, config, combiner)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(config.warmup_ratio * total_steps)
    scheduler = linear_warmup_schedule(optimizer, warmup_steps, total_steps)
    state = TrainingState(model, tokenizer, optimizer, scheduler, streams, combiner)
    if resuming and has_checkpoint(folder):
        restore_checkpoint(folder, state)
        if accelerator.is_main_process:  # a crash may have come after last/ but before best/ or the history
            save_missing_bests(folder, state)
            save_history(folder, state.history)
    trained, state.optimizer = accelerator.prepare(model, optimizer)
    state.model = accelerator.unwrap_model(trained)
    return Run(config, folder, accelerator, tasks, encoded, state, steps_per_epoch, trained, progress)


def check_run(config: TrainConfig, tasks: dict[str, Task], model: MultiTaskModel) -> None:
    """Refuse settings that only the loaded tasks and encoder can check, before anything is written."""
    longest = model.own_encoder(model.tasks[0]).config.max_position_embeddings
    if config.max_length > longest:
        raise ValueError(f"max_length {config.max_length} is longer than this encoder's {longest} positions")
    unknown = sorted(set(config.target_scores or {}) - set(tasks))
    if unknown:
        raise ValueError(f"target_scores name tasks this run does not train: {unknown}; "
                         f"its tasks are {list(tasks)}")


def epoch_plan(run: Run, epoch: int) -> tuple[dict[str, float], list[list[str]]]:
    """This epoch's task mix, and the tasks of every step: every task (all-tasks), or the sampler's one."""
    config = run.config
    if config.strategy == "all-tasks":
        return {}, [list(run.tasks)] * run.steps_per_epoch
    scores = {task: [row["dev_official"] for row in run.state.history if row["task"] == task]
              for task in run.tasks}
    mix = plan_epoch(config.sampler, SamplingEpoch(run.sizes, run.steps_per_epoch, epoch, config.epochs,
                                                   config.seed, config.temperature, scores,
                                                   config.target_scores))
    return mix.probabilities, [[task] for task in mix.tasks]


def train_one_epoch(run: Run, epoch: int, schedule: list[list[str]]) -> EpochRecord:
    """One step per entry of `schedule` (the tasks of that step); counts the losses, examples and tokens."""
    accelerator, device = run.accelerator, run.accelerator.device
    record = EpochRecord(epoch, {name: torch.zeros((), device=device) for name in run.tasks},
                         {name: torch.zeros((), device=device) for name in run.tasks},
                         {name: 0 for name in run.tasks}, len(schedule))
    run.model.train()
    started = time.perf_counter()
    show = run.progress and accelerator.is_main_process
    log = StepLog(accelerator, run.config.log_every, len(schedule), run.config.report_to is not None)
    for step_tasks in tqdm(schedule, desc=f"epoch {epoch}/{run.config.epochs}", disable=not show):
        batches = {task: next(run.state.streams[task]) for task in step_tasks}
        for task, batch in batches.items():  # counted on the CPU: reading a GPU tensor waits for the GPU
            size, width = batch["attention_mask"].shape
            record.examples[task] += size
            record.tokens += size * width
            record.padded_tokens += size * width - int(batch["attention_mask"].sum())
        batches = {task: to_device(batch, device) for task, batch in batches.items()}
        if run.config.strategy == "all-tasks":  # every task at every step, combined
            losses, weights = all_tasks_step(run, batches)
            for task, weight in zip(batches, weights):
                record.weight_sum[task] += weight
        else:  # one task per step
            [(task, batch)] = batches.items()
            losses = train_step(run, batch, task)[None]
        for task, loss in zip(batches, losses):
            record.loss_sum[task] += loss * len(batches[task]["labels"])
        log.after_step(run.state.scheduler, record.loss_sum, record.examples)  # every few steps, if tracking
    if device.type == "cuda":  # the clock stops when the GPU has done the epoch's steps
        torch.cuda.synchronize(device)
    record.seconds = time.perf_counter() - started
    return record


def train_step(run: Run, batch: dict, task: str) -> torch.Tensor:
    """One step on one task: forward through the encoder and the task's head, backward, clip, update.

    The loss is `model.loss(batch, task)`, asked of the model as Accelerate wraps it (under DDP the
    wrapper must run the forward pass). Clipping comes BEFORE the optimizer step (the original tutorial
    clipped after it, to no effect).
    """
    _, loss = run.model(batch["input_ids"], batch["attention_mask"], task, batch["labels"])
    run.accelerator.backward(loss + run.state.model.penalty())  # soft sharing's tie; 0 for the others
    update(run)
    return loss.detach()


def all_tasks_step(run: Run, batches: dict[str, dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """One step on one batch of EVERY task: their losses, or their gradients on the shared encoder, are
    combined by the run's combiner (combine.py); then clip, update. Returns each task's loss and weight.

    The tasks go through one after the other, so only one task's graph is in memory at a time. The bare
    model runs and gradients are averaged over processes by hand, where DDP would average after
    combining: PCGrad, MGDA and UPGrad must see each task's gradient on all processes' batches.
    """
    model, combiner, accelerator = run.state.model, run.state.combiner, run.accelerator
    if isinstance(combiner, GradientAggregation):
        losses, weights = aggregate_encoder_gradients(model, batches, combiner, accelerator)
    else:  # a loss weighting: the gradient of a weighted sum of the losses
        losses = []
        for index, (task, batch) in enumerate(batches.items()):
            losses.append(model.loss(batch, task))
            accelerator.backward(combiner.loss_term(losses[-1], index))  # the gradients of the terms add up
        penalty = model.penalty()  # soft sharing's tie, once per step (a constant 0 for the others)
        if penalty.requires_grad:
            accelerator.backward(penalty)
        learned = (*model.parameters(), *combiner.parameters())
        average_over_processes([p.grad for p in learned if p.grad is not None], accelerator)
        weights = combiner.weights(len(losses)).to(accelerator.device)
    update(run)
    return torch.stack([loss.detach() for loss in losses]), weights


def update(run: Run) -> None:
    """Clip the gradients, step the optimizer and the learning-rate schedule, clear the gradients."""
    run.accelerator.clip_grad_norm_(run.model.parameters(), run.config.max_grad_norm)
    run.state.optimizer.step()
    run.state.scheduler.step()
    run.state.optimizer.zero_grad(set_to_none=True)


def aggregate_encoder_gradients(model: MultiTaskModel, batches: dict[str, dict],
                                combiner: GradientAggregation,
                                accelerator: Accelerator) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each task's gradient on the shared encoder is one row of a matrix (the Jacobian); the combiner's
    aggregator weighs the rows into the encoder's gradient. Each head gets its own task's gradient.

    Under fp16 the losses are multiplied by the loss scaler's scale, as `accelerator.backward` does, so
    the scaler unscales the gradients and skips a step that overflowed. Returns the losses and weights.
    """
    scale = accelerator.scaler.get_scale() if accelerator.scaler is not None else 1.0
    encoder = [p for p in model.shared_parameters() if p.requires_grad]
    jacobian = torch.empty(len(batches), sum(p.numel() for p in encoder), device=encoder[0].device)
    losses, heads = [], []
    for row, (task, batch) in enumerate(batches.items()):
        head = list(model.heads[task].parameters())
        losses.append(model.loss(batch, task))
        gradients = torch.autograd.grad(losses[-1] * scale, encoder + head, materialize_grads=True)
        torch.cat([gradient.flatten() for gradient in gradients[: len(encoder)]], out=jacobian[row])
        for parameter, gradient in zip(head, gradients[len(encoder) :]):
            parameter.grad = gradient
        heads += head
    average_over_processes([jacobian, *(p.grad for p in heads)], accelerator)
    weights = combiner.weights(jacobian)
    if accelerator.num_processes > 1:  # PCGrad visits the tasks in a random order: take process 0's weights
        weights = broadcast(weights)
    for parameter, gradient in zip(encoder, (weights @ jacobian).split([p.numel() for p in encoder])):
        parameter.grad = gradient.view_as(parameter)
    return losses, weights


def average_over_processes(tensors: list[torch.Tensor], accelerator: Accelerator) -> None:
    """Replace each tensor, in place, by its mean over the processes (what DDP does to gradients)."""
    if accelerator.num_processes == 1 or not tensors:
        return
    mean = accelerator.reduce(torch.cat([tensor.flatten() for tensor in tensors]), "mean")
    for tensor, part in zip(tensors, mean.split([tensor.numel() for tensor in tensors])):
        tensor.copy_(part.view_as(tensor))


def score_dev(run: Run) -> dict[str, dict]:
    """Every task's scores on its dev set. The bare model: under DDP a forward pass syncs buffers, and the
    processes score different numbers of batches."""
    return {name: evaluate_split(run.state.model, run.encoded[name]["dev"], name, task.num_labels,
                                 run.config.eval_batch_size, run.accelerator)[0]
            for name, task in run.tasks.items()}


def keep_best(best: dict[str, dict], dev: dict[str, dict], epoch: int) -> list[str]:
    """Keep this epoch as a task's best where its official dev score beats the best so far; return those."""
    improved = []
    for name, scores in dev.items():
        if scores["official"] > best.get(name, {}).get("official", -1.0):
            best[name] = {"epoch": epoch, **scores}
            improved.append(name)
    return improved


def history_rows(run: Run, record: EpochRecord) -> list[dict]:
    """One history row per task: train loss, dev scores, speed, and the epoch's mix, weights or probe."""
    accelerator, device = run.accelerator, run.accelerator.device
    counts = [sum(record.examples.values()), record.tokens, record.padded_tokens]
    total = accelerator.reduce(torch.tensor(counts, device=device), "sum")
    examples, tokens, padded = (int(value) for value in total)
    rows = []
    for name in run.tasks:
        train_loss = accelerator.reduce(record.loss_sum[name], "sum").item()
        train_examples = int(accelerator.reduce(torch.tensor(record.examples[name], device=device), "sum"))
        dev = record.dev[name]
        rows.append({
            "epoch": record.epoch, "task": name, "train_loss": train_loss / max(train_examples, 1),
            "train_examples": train_examples, **{f"dev_{key}": value for key, value in dev.items()},
            "best_so_far": name in record.improved, "seconds": record.seconds,
            "examples_per_second": examples / record.seconds,
            "tokens_per_second": (tokens - padded) / record.seconds, "pad_fraction": padded / max(tokens, 1),
            **({"gradient_cosine": record.cosines[name]} if record.cosines else {}),
            **({"sampling_probability": record.probabilities[name]} if record.probabilities else {}),
            **({"weight": record.weight_sum[name].item() / record.steps}
               if run.config.strategy == "all-tasks" else {}),
        })
    return rows


def save_epoch(folder: Path, state: TrainingState, improved: list[str]) -> None:
    """last/ first: it records which epoch is each task's best, so a crash before best/ can be repaired;
    then the improved tasks' best/<task>/, then the history."""
    save_checkpoint(folder, state)
    for name in improved:
        save_best(folder, name, state.model, state.tokenizer, state.epoch, state.best[name])
    save_history(folder, state.history)


def save_missing_bests(folder: Path, state: TrainingState) -> None:
    """After a crash between last/ and best/: the tasks whose best epoch is the checkpoint's own get it saved.

    The model holds last/'s weights, which are exactly that epoch's; the older model in best/<task>/ is
    replaced. (best/ is written after last/, so it can lag behind last/ but never run ahead of it.)
    """
    for name, scores in state.best.items():
        if scores["epoch"] == state.epoch and saved_best_epoch(folder, name) != state.epoch:
            save_best(folder, name, state.model, state.tokenizer, state.epoch, scores)
