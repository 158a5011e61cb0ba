"""Lesson step 4, training: one loop for multi-task and single-task runs (one task = a baseline).

At each step the sampler picks a task, that task's next batch goes through the shared encoder and
its own head; loss, backward, clip, step, schedule. Or (strategy "all-tasks") every step takes a batch
of every task and combines their losses or gradients (combine.py). After each epoch every task is
scored on its dev set, the history is written, the best checkpoint of each task is kept, and the run
can resume.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, broadcast, set_seed
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .batching import BatchStream, batches_per_pass, encode_task, to_device
from .combine import LOG_VARIANCE_LEARNING_RATE, TaskCombiner
from .config import TrainConfig
from .conflict import gradient_cosines
from .dependencies import check_requirements
from .evaluate import evaluate_split, test_best_checkpoints
from .model import MultiTaskModel, build_model
from .runs import (TrainingRun, exclusive_run_folder, has_checkpoint, load_run_tasks, prepare_folder,
                   recover_run_folder, restore_checkpoint, save_best, save_checkpoint, save_config,
                   save_history, save_results, saved_best_epoch)
from .sampling import ADAPTIVE, adaptive_probabilities, draw_tasks, task_probabilities, task_schedule


def make_accelerator(mixed_precision: str = "no") -> Accelerator:
    """Accelerate picks the device (GPU if any) and, under torchrun or `accelerate launch`, the process."""
    # Each step trains one head only, so under DDP the other heads get no gradient that step.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    # Accelerate starts CPU processes (gloo) only when told cpu=True: without it, two processes that
    # torchrun started on a machine without a GPU would each train alone and overwrite each other's files.
    several_cpu_processes = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    return Accelerator(mixed_precision=mixed_precision, cpu=several_cpu_processes, kwargs_handlers=[ddp])


def make_optimizer(model, config: TrainConfig, combiner: TaskCombiner | None = None) -> torch.optim.AdamW:
    """AdamW from torch, fused into one kernel: the same update, several times faster on CPU and GPU.

    Learned task weights (uncertainty weighting's log-variances) are a second group, at their own rate.
    """
    groups = [{"params": list(model.parameters())}]
    if combiner is not None and list(combiner.parameters()):
        groups.append({"params": list(combiner.parameters()), "lr": LOG_VARIANCE_LEARNING_RATE,
                       "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)


def probe_gradient_conflict(model: MultiTaskModel, encoded: dict, config: TrainConfig,
                            epoch: int) -> dict[str, float]:
    """For each task, the mean cosine between its encoder gradient and the other tasks' (see conflict.py)."""
    if len(encoded) < 2 or config.gradient_probe_batches < 1:
        return {}
    pairs = gradient_cosines(model, {name: splits["train"] for name, splits in encoded.items()},
                             config.gradient_probe_batches, config.batch_size, seed=config.seed + epoch)
    return {name: sum(value for pair, value in pairs.items() if name in pair.split("~")) / (len(encoded) - 1)
            for name in encoded}


def train_step(model, batch: dict, task: str, optimizer, scheduler, accelerator: Accelerator,
               max_grad_norm: float) -> torch.Tensor:
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


def task_loss(model, batch: dict, task: str) -> torch.Tensor:
    """The cross-entropy of `task`'s head on a batch of that task (in float32 under mixed precision)."""
    return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"], task).float(), batch["labels"])


def all_tasks_step(model, batches: dict[str, dict], combiner: TaskCombiner, optimizer, scheduler,
                   accelerator: Accelerator, max_grad_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One step on one batch of EVERY task: their losses, or their gradients on the encoder, are combined
    by `combiner` (combine.py); then clip, update. Returns each task's loss and weight in this step.

    The tasks go through one after the other, so only one task's graph is in memory at a time. The bare
    model runs and gradients are averaged over processes by hand, where DDP would average after
    combining: PCGrad, MGDA and UPGrad must see each task's gradient on all processes' batches.
    """
    bare = accelerator.unwrap_model(model)
    if combiner.aggregator is None:  # equal or uncertainty: the gradient of a weighted sum of the losses
        losses = []
        for index, (task, batch) in enumerate(batches.items()):
            losses.append(task_loss(bare, batch, task))
            accelerator.backward(combiner.loss_term(losses[-1], index))  # the gradients of the terms add up
        learned = (*bare.parameters(), *combiner.parameters())
        average_over_processes([p.grad for p in learned if p.grad is not None], accelerator)
        weights = combiner.loss_weights(len(losses)).to(accelerator.device)
    else:
        losses, weights = aggregate_encoder_gradients(bare, batches, combiner, accelerator)
    accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return torch.stack([loss.detach() for loss in losses]), weights


def aggregate_encoder_gradients(model: MultiTaskModel, batches: dict[str, dict], combiner: TaskCombiner,
                                accelerator: Accelerator) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each task's gradient on the shared encoder is one row of a matrix (the Jacobian); the combiner's
    aggregator weighs the rows into the encoder's gradient. Each head gets its own task's gradient.

    Under fp16 the losses are multiplied by the loss scaler's scale, as `accelerator.backward` does, so
    the scaler unscales the gradients and skips a step that overflowed. Returns the losses and weights.
    """
    scale = accelerator.scaler.get_scale() if accelerator.scaler is not None else 1.0
    encoder = [p for p in model.encoder.parameters() if p.requires_grad]
    jacobian = torch.empty(len(batches), sum(p.numel() for p in encoder), device=encoder[0].device)
    losses, heads = [], []
    for row, (task, batch) in enumerate(batches.items()):
        head = list(model.heads[task].parameters())
        losses.append(task_loss(model, batch, task))
        gradients = torch.autograd.grad(losses[-1] * scale, encoder + head, materialize_grads=True)
        torch.cat([gradient.flatten() for gradient in gradients[: len(encoder)]], out=jacobian[row])
        for parameter, gradient in zip(head, gradients[len(encoder) :]):
            parameter.grad = gradient
        heads += head
    average_over_processes([jacobian, *(p.grad for p in heads)], accelerator)
    weights = combiner.aggregate(jacobian)
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


def sampling_probabilities(config: TrainConfig, sizes: dict[str, int], epoch: int,
                           history: list[dict]) -> dict[str, float]:
    """This epoch's task mix: the sampler's, or the adaptive sampler's from the dev scores so far."""
    if config.sampler != ADAPTIVE:
        return task_probabilities(sizes, config.sampler, config.temperature, epoch, config.epochs)
    scores = {task: [row["dev_official"] for row in history if row["task"] == task] for task in sizes}
    base = task_probabilities(sizes, "temperature", config.temperature)
    return adaptive_probabilities(base, scores, config.target_scores)


def epoch_schedule(config: TrainConfig, sizes: dict[str, int], steps: int, epoch: int,
                   probabilities: dict[str, float]) -> list[list[str]]:
    """The tasks of every step of one epoch: every task (all-tasks), or one per step from the sampler."""
    if config.strategy == "all-tasks":
        return [list(sizes)] * steps
    if config.sampler == ADAPTIVE:
        tasks = draw_tasks(probabilities, steps, config.seed, epoch)
    else:
        tasks = task_schedule(sizes, steps, config.sampler, config.seed, config.temperature, epoch,
                              config.epochs)
    return [[task] for task in tasks]


def fit(config: TrainConfig, folder: str | Path, resume: bool = False, on_epoch_end=None,
        progress: bool = True, accelerator: Accelerator | None = None) -> TrainingRun:
    """Train one shared encoder on `config.tasks`, scoring every task on dev after every epoch.

    Writes to `folder`: config.json, history.json/csv (after every epoch), best/<task>/ (the best
    checkpoint of each task by its official dev score), last/ (to resume from) and results.json
    (each task's test score from its own best checkpoint). `on_epoch_end(history)` is called
    with the history so far, e.g. to redraw a plot. One process at a time may train into a folder.
    """
    check_requirements(config)  # a missing optional package stops the run here, in one line
    folder = Path(folder)
    accelerator = accelerator or make_accelerator(config.mixed_precision)
    warn_if_precision_is_emulated(config.mixed_precision, accelerator)
    with exclusive_run_folder(folder) if accelerator.is_main_process else contextlib.nullcontext():
        return train_into(folder, config, resume, on_epoch_end, progress, accelerator)


def train_into(folder: Path, config: TrainConfig, resume: bool, on_epoch_end, progress: bool,
               accelerator: Accelerator) -> TrainingRun:
    """`fit`'s body, run while the folder is held: set up, train epoch by epoch, test the best checkpoints."""
    resuming = prepare_folder(folder, config, resume)
    if resuming and accelerator.is_main_process:
        recover_run_folder(folder)
    accelerator.wait_for_everyone()  # every process has checked the folder before it is written

    set_seed(config.seed)
    tasks = load_run_tasks(config)
    model, tokenizer = build_model({name: task.label_names for name, task in tasks.items()}, config.model,
                                   config.pooling)
    longest = model.encoder.config.max_position_embeddings
    if config.max_length > longest:
        raise ValueError(f"max_length {config.max_length} is longer than this encoder's {longest} positions")
    unknown = sorted(set(config.target_scores or {}) - set(tasks))
    if unknown:
        raise ValueError(f"target_scores name tasks this run does not train: {unknown}; "
                         f"its tasks are {list(tasks)}")
    if accelerator.is_main_process:  # only now: a typo in a task or model name leaves no folder behind
        folder.mkdir(parents=True, exist_ok=True)
        save_config(folder, config)
    encoded = {name: encode_task(tokenizer, task, config.max_length) for name, task in tasks.items()}
    rank, world = accelerator.process_index, accelerator.num_processes
    streams = {name: BatchStream(encoded[name]["train"], config.batch_size, config.seed,
                                 config.group_by_length, rank, world) for name in tasks}
    sizes = {name: len(encoded[name]["train"]) for name in tasks}
    steps_per_epoch = sum(batches_per_pass(size, config.batch_size * world) for size in sizes.values())
    combiner = None
    if config.strategy == "all-tasks":  # a batch of every task per step; an epoch has sampling's batches
        steps_per_epoch = -(-steps_per_epoch // len(tasks))
        combiner = TaskCombiner(config.combine, len(tasks)).to(accelerator.device)

    optimizer = make_optimizer(model, config, combiner)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(config.warmup_ratio * total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    history, best, start_epoch = [], {}, 1
    if resuming and has_checkpoint(folder):
        finished, best, history = restore_checkpoint(folder, model, optimizer, scheduler, streams, combiner)
        start_epoch = finished + 1
        if accelerator.is_main_process:  # a crash may have come after last/ but before best/ or the history
            save_missing_bests(folder, model, tokenizer, best, finished)
            save_history(folder, history)
    model, optimizer = accelerator.prepare(model, optimizer)

    for epoch in range(start_epoch, config.epochs + 1):
        # dropout: a resumed epoch draws the same masks, and each process its own
        torch.manual_seed(config.seed + epoch + 10_000 * accelerator.process_index)
        model.train()
        probabilities = {} if combiner is not None else sampling_probabilities(config, sizes, epoch, history)
        schedule = epoch_schedule(config, sizes, steps_per_epoch, epoch, probabilities)
        loss_sum = {name: torch.zeros((), device=accelerator.device) for name in tasks}
        weight_sum = {name: torch.zeros((), device=accelerator.device) for name in tasks}
        examples = {name: 0 for name in tasks}
        tokens, padded_tokens = 0, 0
        started = time.perf_counter()
        show = progress and accelerator.is_main_process
        for step_tasks in tqdm(schedule, desc=f"epoch {epoch}/{config.epochs}", disable=not show):
            batches = {task: next(streams[task]) for task in step_tasks}
            for task, batch in batches.items():  # counted on the CPU: reading a GPU tensor waits for the GPU
                size, width = batch["attention_mask"].shape
                examples[task] += size
                tokens += size * width
                padded_tokens += size * width - int(batch["attention_mask"].sum())
            batches = {task: to_device(batch, accelerator.device) for task, batch in batches.items()}
            if combiner is None:  # one task per step
                [(task, batch)] = batches.items()
                loss = train_step(model, batch, task, optimizer, scheduler, accelerator, config.max_grad_norm)
                losses = loss[None]
            else:  # every task at every step, combined
                losses, weights = all_tasks_step(model, batches, combiner, optimizer, scheduler, accelerator,
                                                 config.max_grad_norm)
                for task, weight in zip(batches, weights):
                    weight_sum[task] += weight
            for task, loss in zip(batches, losses):
                loss_sum[task] += loss * len(batches[task]["labels"])  # on the device: no host sync per step
        if accelerator.device.type == "cuda":
            # the clock stops when the GPU has done the epoch's steps
            torch.cuda.synchronize(accelerator.device)
        seconds = time.perf_counter() - started
        total = accelerator.reduce(torch.tensor([sum(examples.values()), tokens, padded_tokens],
                                                device=accelerator.device), "sum")
        bare_model = accelerator.unwrap_model(model)
        cosines = probe_gradient_conflict(bare_model, encoded, config, epoch)
        improved_tasks = []
        for name, task in tasks.items():
            train_loss = accelerator.reduce(loss_sum[name], "sum").item()
            example_count = torch.tensor(examples[name], device=accelerator.device)
            train_examples = int(accelerator.reduce(example_count, "sum"))
            # the bare model: under DDP a forward pass syncs buffers, and the processes score
            # different numbers of batches
            dev, _ = evaluate_split(bare_model, encoded[name]["dev"], name, task.num_labels,
                                    config.eval_batch_size, accelerator)
            improved = dev["official"] > best.get(name, {}).get("official", -1.0)
            if improved:
                best[name] = {"epoch": epoch, **dev}
                improved_tasks.append(name)
            history.append({
                "epoch": epoch, "task": name, "train_loss": train_loss / max(train_examples, 1),
                "train_examples": train_examples, **{f"dev_{key}": value for key, value in dev.items()},
                "best_so_far": improved, "seconds": seconds, "examples_per_second": int(total[0]) / seconds,
                "tokens_per_second": (int(total[1]) - int(total[2])) / seconds,
                "pad_fraction": int(total[2]) / max(int(total[1]), 1),
                **({"gradient_cosine": cosines[name]} if cosines else {}),
                **({"sampling_probability": probabilities[name]} if probabilities else {}),
                **({"weight": weight_sum[name].item() / len(schedule)} if combiner else {}),
            })
        if accelerator.is_main_process:
            # last/ first: it records which epoch is each task's best, so a crash before best/ can be repaired
            save_checkpoint(folder, bare_model, tokenizer, optimizer, scheduler, streams, best, history,
                            epoch, combiner)
            for name in improved_tasks:
                save_best(folder, name, bare_model, tokenizer, epoch, best[name])
            save_history(folder, history)
        accelerator.wait_for_everyone()
        if on_epoch_end and accelerator.is_main_process:
            on_epoch_end(pd.DataFrame(history))

    results = test_best_checkpoints(folder, accelerator.unwrap_model(model), tasks, encoded, best,
                                    config.eval_batch_size, accelerator)
    if accelerator.is_main_process:
        save_results(folder, results)
    accelerator.wait_for_everyone()
    return TrainingRun(folder, pd.DataFrame(history), results)


def save_missing_bests(folder: Path, model: MultiTaskModel, tokenizer, best: dict, epoch: int) -> None:
    """After a crash between last/ and best/: the tasks whose best epoch is the checkpoint's own get it saved.

    The model holds last/'s weights, which are exactly that epoch's; the older model in best/<task>/ is
    replaced. (best/ is written after last/, so it can lag behind last/ but never run ahead of it.)
    """
    for name, scores in best.items():
        if scores["epoch"] == epoch and saved_best_epoch(folder, name) != epoch:
            save_best(folder, name, model, tokenizer, epoch, scores)


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes in bf16 natively (x86 avx512_bf16 or amx_bf16, ARM bf16); Linux only."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    flags = set(" ".join(line.split(":", 1)[1] for line in cpuinfo.splitlines()
                         if line.startswith(("flags", "Features")) and ":" in line).split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def warn_if_precision_is_emulated(mixed_precision: str, accelerator: Accelerator) -> None:
    """bf16 on a CPU without bf16 instructions is emulated: often a hundred times slower than fp32."""
    if mixed_precision == "bf16" and accelerator.device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn("--mixed-precision bf16 on this CPU is emulated (no avx512_bf16 or amx_bf16 "
                      "in its flags), so training will be far slower than in fp32: use --mixed-precision no",
                      stacklevel=3)
