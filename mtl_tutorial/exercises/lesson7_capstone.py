"""Lesson 7's capstone (notebooks/07_capstone): a whole training run built from the student's own pieces of
lessons 1-4, put beside `fit`'s run of the same settings and seed.

`train_with_your_pieces` reads top to bottom like `fit` without what a real run adds around the loop
(Accelerate, checkpoints on disk, resuming, several processes): with the lessons' solutions it makes the
same batches, heads, schedule and steps as `fit`, so the two runs' scores agree (`compare_with_fit`).
"""

from __future__ import annotations

import copy
import types
from dataclasses import dataclass

import pandas as pd
import torch
from accelerate.utils import set_seed
from torch import nn

from ..batching import BatchStream, EncodedSplit, encode_task
from ..config import TrainConfig
from ..evaluate import evaluate_split
from ..model import with_loss
from ..optimisation import steps_of_run
from ..runs import TrainingRun, load_run_tasks
from ..sampling import task_probabilities
from ..sharing import build_shared_model
from ..train import linear_warmup_schedule

DRAWN_SAMPLERS = ("proportional", "uniform", "temperature")  # a fixed mix of tasks, drawn at every step
SAME_SCORE = 1e-9  # scores (0-1) this close are the same: on one device the two runs compute the same sums


@dataclass
class YourPieces:
    """The student's pieces: lesson 1's collate, lesson 2's head class and forward, lesson 3's schedule,
    lesson 4's training step and best epochs (each with the signature its lesson's exercise gave it)."""

    collate: object  # collate(examples, pad_id) -> batch
    head: type  # Head(hidden_size, num_labels, dropout)
    forward: object  # forward(self, input_ids, attention_mask, task) -> logits
    sampler: object  # draw_schedule(probabilities, steps, seed) -> task names
    train_step: object  # train_step(model, batch, task, optimizer, scheduler, max_grad_norm) -> loss
    best_epochs: object  # best_epochs(history) -> {task: epoch}


class CollatedSplit(EncodedSplit):
    """An encoded split whose batches are made by your collate function instead of the package's."""

    def __init__(self, split: EncodedSplit, collate):
        super().__init__(split.input_ids, split.labels, split.pad_id)
        self.collate = collate

    def batch(self, indices: list[int], with_labels: bool = True) -> dict:
        examples = [{"input_ids": list(self.input_ids[i]), "label": self.labels[i]} for i in indices]
        return dict(self.collate(examples, self.pad_id))


def train_with_your_pieces(config: TrainConfig, pieces: YourPieces, progress=print) -> TrainingRun:
    """Train `config` with your pieces on one device, scoring dev after every epoch and testing each task
    with the weights of its best epoch (your `best_epochs`). Returns the history and results as `fit` does;
    nothing is written to disk (`folder` is None)."""
    if config.strategy != "sample" or config.sampler not in DRAWN_SAMPLERS:
        raise ValueError(f"the capstone draws one task per step with one of {DRAWN_SAMPLERS}; got strategy "
                         f"{config.strategy!r}, sampler {config.sampler!r}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # The data and the model, drawn from the seed in fit's order: the same heads, the same batches
    set_seed(config.seed)
    tasks = load_run_tasks(config)
    model, tokenizer = build_shared_model({name: task.label_names for name, task in tasks.items()}, config)
    use_your_model_pieces(model, pieces)
    model.to(device)
    splits = {name: {split: CollatedSplit(encoded, pieces.collate)
                     for split, encoded in encode_task(tokenizer, task, config.max_length).items()}
              for name, task in tasks.items()}
    streams = {name: BatchStream(own["train"], config.batch_size, config.seed, config.group_by_length)
               for name, own in splits.items()}
    sizes = {name: len(own["train"]) for name, own in splits.items()}
    probabilities = task_probabilities(sizes, config.sampler, config.temperature)

    # The optimiser and its schedule, as fit makes them
    steps_per_epoch, warmup_steps = steps_of_run(config, sizes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay, fused=True)
    scheduler = linear_warmup_schedule(optimizer, warmup_steps, steps_per_epoch * config.epochs)

    history, best_weights = [], {}
    for epoch in range(1, config.epochs + 1):
        torch.manual_seed(config.seed + epoch)  # dropout: fit seeds each epoch so
        schedule = list(pieces.sampler(probabilities, steps_per_epoch, config.seed * 1_000 + epoch))
        losses = {name: [] for name in tasks}
        model.train()
        for task in schedule:
            batch = {key: value.to(device) for key, value in next(streams[task]).items()}
            loss = pieces.train_step(model, batch, task, optimizer, scheduler, config.max_grad_norm)
            losses[task].append((torch.as_tensor(loss).item(), len(batch["labels"])))
        for name, task in tasks.items():
            dev, _ = evaluate_split(model, splits[name]["dev"], name, task.num_labels, config.eval_batch_size)
            tweets = sum(size for _, size in losses[name])
            history.append({"epoch": epoch, "task": name,
                            "train_loss": sum(loss * size for loss, size in losses[name]) / max(tweets, 1),
                            "train_examples": tweets, **{f"dev_{key}": value for key, value in dev.items()}})
        chosen = pieces.best_epochs(pd.DataFrame(history))
        for name in tasks:
            if chosen[name] == epoch:  # this epoch is the task's best so far: keep its weights
                best_weights[name] = copy.deepcopy(model.state_dict())
        progress(f"epoch {epoch}/{config.epochs}: " + ", ".join(
            f"{row['task']} dev {row['dev_official']:.3f}" for row in history[-len(tasks):]))

    history = pd.DataFrame(history)
    chosen = pieces.best_epochs(history)
    results = {}
    for name, task in tasks.items():  # each task tested with the weights of its own best epoch
        model.load_state_dict(best_weights[name])
        test, _ = evaluate_split(model, splits[name]["test"], name, task.num_labels, config.eval_batch_size)
        dev = history[(history["task"] == name) & (history["epoch"] == chosen[name])].iloc[0]
        results[name] = {"best_epoch": int(chosen[name]), "dev": {"official": float(dev["dev_official"])},
                         "test": test}
    return TrainingRun(None, history, results)


def use_your_model_pieces(model: nn.Module, pieces: YourPieces) -> None:
    """Give `model` your heads (starting from the weights the package's heads drew, so that both runs start
    from one point) and your forward, with the loss `fit`'s evaluation asks of a model."""
    for name, head in model.heads.items():
        with torch.random.fork_rng(devices=[]):  # your head's own draw leaves the seeded generator alone
            yours = pieces.head(head.dense.in_features, head.out.out_features, head.dropout.p)
        for mine, drawn in zip(linear_layers(yours), linear_layers(head)):
            mine.load_state_dict(drawn.state_dict())
        model.heads[name] = yours

    def forward(self, input_ids, attention_mask, task, labels=None, reduction="mean"):
        return with_loss(pieces.forward(self, input_ids, attention_mask, task), labels, reduction)

    model.forward = types.MethodType(forward, model)


def linear_layers(head: nn.Module) -> list[nn.Linear]:
    """A head's linear layers in the order it creates them: dense, then output."""
    return [module for module in head.modules() if isinstance(module, nn.Linear)]


def compare_with_fit(yours: TrainingRun, fitted: TrainingRun) -> pd.DataFrame:
    """Per task: the tweets trained, the best epoch, the dev and test scores (x 100) of your run beside
    `fit`'s, and whether they are the same (scores within `SAME_SCORE`, the same epoch and tweets)."""
    rows = []
    for name, fit_result in fitted.results.items():
        own = yours.results[name]
        trained = [int(run.history.loc[run.history["task"] == name, "train_examples"].sum())
                   for run in (yours, fitted)]
        rows.append({"task": name, "tweets trained": trained[0], "fit's tweets": trained[1],
                     "best epoch": own["best_epoch"], "fit's best epoch": fit_result["best_epoch"],
                     "dev": 100 * own["dev"]["official"], "fit's dev": 100 * fit_result["dev"]["official"],
                     "test": 100 * own["test"]["official"],
                     "fit's test": 100 * fit_result["test"]["official"]})
    table = pd.DataFrame(rows).set_index("task")
    table["test - fit's"] = table["test"] - table["fit's test"]
    table["same"] = ((table["test - fit's"].abs() <= 100 * SAME_SCORE)
                     & ((table["dev"] - table["fit's dev"]).abs() <= 100 * SAME_SCORE)
                     & (table["best epoch"] == table["fit's best epoch"])
                     & (table["tweets trained"] == table["fit's tweets"]))
    return table
