"""Ready-made lesson steps for the notebooks: the lesson's scale, runs trained once and reused, comparisons.

Each function is a few calls into data, model, train and metrics, named so that a notebook cell reads
like the sentence above it. Nothing here draws: pictures are in `plots`, buttons in `widgets`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import torch

from .data import shuffled_batches
from .metrics import confusion_table, official_metric_name, official_score
from .model import load_model, predict, sequence_representation
from .sampling import task_probabilities
from .train import (CONFIG_FILE, RESULTS_FILE, TrainConfig, TrainingRun, fit, load_config, load_history,  # noqa: F401
                    load_run_tasks, results_table)  # results_table: re-exported, so a notebook needs only `recipes`

GITHUB_REPOSITORY = "OWNER/mtl-tutorial"  # where the package lives; README and the notebooks' Colab cells use it too
PACKAGE_URL = f"git+https://github.com/{GITHUB_REPOSITORY}"
QUICK_VARIABLE = "MTL_TUTORIAL_QUICK"  # "1" forces the quick setting, even on a GPU (tests and CI)


def colab_url(notebook: str) -> str:
    """The address that opens `notebooks/<notebook>.ipynb` of the repository in Google Colab."""
    return f"https://colab.research.google.com/github/{GITHUB_REPOSITORY}/blob/main/notebooks/{notebook}.ipynb"


# ---------------------------------------------------------------------------------------------
# The lesson's scale
# ---------------------------------------------------------------------------------------------


def quick_mode() -> bool:
    """True when the lessons must be quick: there is no GPU, or MTL_TUTORIAL_QUICK=1 asks for it."""
    return os.environ.get(QUICK_VARIABLE) == "1" or not torch.cuda.is_available()


def lesson_config(tasks=("emotion", "sentiment"), **changes) -> TrainConfig:
    """The lessons' training settings: the original tutorial's recipe on a GPU, a small one on a CPU.

    Full: roberta-base, pooler output, all data, 5 epochs at lr 2e-5. Quick: the packaged MiniLM,
    400 training and 300 dev/test tweets per task, 2 epochs at lr 1e-4. `changes` override either.
    """
    if quick_mode():
        config = TrainConfig(tasks=list(tasks), model=None, pooling="mean", epochs=2, learning_rate=1e-4,
                             max_train_examples=400, max_eval_examples=300)
    else:
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        config = TrainConfig(tasks=list(tasks), model="roberta-base", pooling="pooler", epochs=5, learning_rate=2e-5,
                             mixed_precision=precision)
    return dataclasses.replace(config, **changes)


def describe_scale(config: TrainConfig) -> str:
    """What a run of `config` will train on, in words: encoder, epochs and every cap on the data."""
    encoder = config.model or "the packaged MiniLM (offline)"
    lines = [f"encoder {encoder}, pooling {config.pooling!r}, {config.epochs} epochs at learning rate {config.learning_rate:g}, "
             f"tweets cut at {config.max_length} tokens"]
    if config.max_train_examples:
        lines.append(f"CAPPED: at most {config.max_train_examples} training tweets per task (a random sample)")
    if config.max_eval_examples:
        lines.append(f"CAPPED: at most {config.max_eval_examples} dev and {config.max_eval_examples} test tweets per task, "
                     "so every score below is an estimate")
    if not (config.max_train_examples or config.max_eval_examples):
        lines.append("all training, dev and test tweets of every task")
    setting = "quick setting (CPU, or MTL_TUTORIAL_QUICK=1)" if quick_mode() else "full recipe (GPU)"
    return f"{setting}, tasks {', '.join(config.tasks)}:\n  " + "\n  ".join(lines)


# ---------------------------------------------------------------------------------------------
# Runs: trained once, read back by the next notebook
# ---------------------------------------------------------------------------------------------


def saved_config(folder: str | Path) -> TrainConfig | None:
    """The settings of the run in `folder`, or None when no run was started there."""
    return load_config(folder) if (Path(folder) / CONFIG_FILE).exists() else None


def open_run(folder: str | Path) -> TrainingRun:
    """A finished run read back from its folder: its history and its test results."""
    folder = Path(folder)
    results = json.loads((folder / RESULTS_FILE).read_text(encoding="utf-8"))
    return TrainingRun(folder, load_history(folder), results)


def train_run(config: TrainConfig, folder: str | Path, on_epoch_end=None, progress: bool = False) -> TrainingRun:
    """Train `config` into `folder`, replacing the run that was there: one lesson folder, one run."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        if not (folder / CONFIG_FILE).exists():
            raise ValueError(f"{folder} holds files that are not a training run; choose another folder")
        shutil.rmtree(folder)
    return fit(config, folder, on_epoch_end=on_epoch_end, progress=progress)


def open_or_train(config: TrainConfig, folder: str | Path, on_epoch_end=None, progress: bool = False) -> TrainingRun:
    """The run of `config` in `folder`: read back if it finished, resumed if it stopped, else trained anew."""
    folder = Path(folder)
    if saved_config(folder) != config:
        return train_run(config, folder, on_epoch_end, progress)
    if (folder / RESULTS_FILE).exists():
        return open_run(folder)
    return fit(config, folder, resume=True, on_epoch_end=on_epoch_end, progress=progress)


def single_task_runs(config: TrainConfig, folder: str | Path) -> dict[str, TrainingRun]:
    """The single-task baselines of a multi-task `config`: each task alone, same settings, in folder/<task>."""
    return {task: open_or_train(dataclasses.replace(config, tasks=[task]), Path(folder) / task) for task in config.tasks}


def multitask_vs_single_task(multitask: TrainingRun, single: dict[str, TrainingRun]) -> pd.DataFrame:
    """Test scores per task (each from its best dev epoch): single-task, multi-task, their difference."""
    rows = []
    for task, result in multitask.results.items():
        alone = single[task].results[task]
        rows.append({"task": task, "metric": result["official_metric"],
                     "majority baseline": result["test_majority_baseline"]["official"],
                     "single-task": alone["test"]["official"], "multi-task": result["test"]["official"],
                     "multi - single": result["test"]["official"] - alone["test"]["official"]})
    return pd.DataFrame(rows).set_index("task")


# ---------------------------------------------------------------------------------------------
# Looking inside a run
# ---------------------------------------------------------------------------------------------


def predictions_on_test(folder: str | Path, task: str, checkpoint: str = "best") -> pd.DataFrame:
    """Every test tweet of `task` with its true and predicted label, from the run's best (or "last") checkpoint.

    The two label columns are categoricals over the task's label names, in label-id order.
    """
    folder = Path(folder)
    config = load_config(folder)
    test = load_run_tasks(dataclasses.replace(config, tasks=[task]))[task].splits["test"]
    saved = folder / "best" / task if checkpoint == "best" else folder / "last"
    model, tokenizer = load_model(saved)
    names = model.task_labels[task]
    table = predict(model, tokenizer, test["text"].tolist(), task, config.max_length, config.eval_batch_size)
    return pd.DataFrame({"text": test["text"],
                         "true": pd.Categorical.from_codes(test["label"], names),
                         "predicted": pd.Categorical(table["label"], categories=names)})


def confusion_of(predictions: pd.DataFrame) -> pd.DataFrame:
    """The confusion table of a `predictions_on_test` frame: rows are the truth, columns the prediction."""
    names = list(predictions["true"].cat.categories)
    return confusion_table(predictions["true"].cat.codes, predictions["predicted"].cat.codes, names)


def score_of(predictions: pd.DataFrame, task: str) -> float:
    """The official TweetEval score of a `predictions_on_test` frame."""
    names = predictions["true"].cat.categories
    return official_score(task, predictions["true"].cat.codes, predictions["predicted"].cat.codes, len(names))


def best_vs_last(run: TrainingRun) -> pd.DataFrame:
    """Test score of each task's best dev epoch beside the last epoch's (what the original tutorial tested)."""
    last_epoch = int(run.history["epoch"].max())
    rows = []
    for task, result in run.results.items():
        rows.append({"task": task, "metric": official_metric_name(task),
                     "best dev epoch": result["best_epoch"], "test, best epoch": result["test"]["official"],
                     "last epoch": last_epoch, "test, last epoch": score_of(predictions_on_test(run.folder, task, "last"), task)})
    return pd.DataFrame(rows).set_index("task")


def best_models(folder: str | Path) -> dict:
    """Each task's best checkpoint of a run, loaded once: {task: (model, tokenizer)}."""
    return {task: load_model(Path(folder) / "best" / task) for task in load_config(folder).tasks}


def label_tweet(models: dict, text: str) -> pd.DataFrame:
    """Every head's answer for one tweet: one row per (task, label) with its probability."""
    rows = []
    for task, (model, tokenizer) in models.items():
        answer = predict(model, tokenizer, [text], task).iloc[0]
        rows += [{"task": task, "label": label, "probability": answer[label], "chosen": label == answer["label"]}
                 for label in model.task_labels[task]]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Small measurements for the lessons on data, model and sampling
# ---------------------------------------------------------------------------------------------


def padding_waste(lengths: list[int], batch_size: int = 32, max_length: int = 64, seed: int = 77) -> dict[str, float]:
    """The fraction of pad tokens in one pass over a split, for three ways of padding batches.

    A pad token costs as much compute as a real one, so this is the share of the work thrown away.
    """
    real = sum(lengths)

    def waste(batches: list[list[int]]) -> float:
        return 1 - real / sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)

    return {
        f"every tweet padded to {max_length} (the tutorial)": 1 - real / (len(lengths) * max_length),
        "each batch padded to its longest tweet": waste(shuffled_batches(lengths, batch_size, seed, group_by_length=False)),
        "... with length-grouped batches (our default)": waste(shuffled_batches(lengths, batch_size, seed)),
    }


@torch.inference_mode()
def similarities(encoder, tokenizer, texts: list[str], pooling: str) -> pd.DataFrame:
    """Cosine similarity of the tweets' vectors under one sequence representation ("mean", "cls", "pooler")."""
    encoder.eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    vectors = sequence_representation(encoder(**batch), batch["attention_mask"], pooling)
    vectors = torch.nn.functional.normalize(vectors, dim=-1)
    return pd.DataFrame((vectors @ vectors.T).numpy(), index=texts, columns=texts)


def passes_per_epoch(sizes: dict[str, int], batch_size: int = 32, samplers=("proportional", "temperature", "uniform"),
                     temperature: float = 2.0) -> pd.DataFrame:
    """How many times each task's training set is gone through in one epoch, under each sampler.

    An epoch has as many steps as all tasks have batches; a task drawn with probability p gets
    p × steps of them. More than 1 means its tweets are seen repeatedly: a risk of over-fitting.
    """
    batches = {task: -(-size // batch_size) for task, size in sizes.items()}
    steps = sum(batches.values())
    rows = {sampler: {task: p * steps / batches[task] for task, p in task_probabilities(sizes, sampler, temperature).items()}
            for sampler in samplers}
    return pd.DataFrame(rows).T
