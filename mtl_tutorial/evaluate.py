"""Lesson step 5, evaluation: score a split, test each task with its own best checkpoint, label new tweets.

Also every test prediction of a run, and what every head says about one tweet. The comparisons lesson 5
draws from these (multi-task against single-task, the best epoch against the last) are in `lessons`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from .batching import EncodedSplit, encode, evaluation_batches, to_device
from .metrics import majority_baseline, official_metric_name, scores
from .model import MultiTaskModel, load_model
from .runs import (BEST_FOLDER, best_models, is_run, load_best, load_config, load_last, load_run_tasks,
                   restore_best, run_task_names)
from .sharing import LoraSharing


@torch.inference_mode()
def evaluate_split(model: MultiTaskModel, split: EncodedSplit, task: str, num_labels: int,
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
        batch = to_device(split.batch(indices), device)
        logits, loss = model(batch["input_ids"], batch["attention_mask"], task, batch["labels"], "sum")
        loss_sum += loss.item()
        found.extend(zip(indices, logits.argmax(-1).tolist()))
    if accelerator and world > 1:
        found = gather_object(found)
        loss_sum = sum(gather_object([loss_sum]))
    predictions = [0] * len(split)
    for index, label in found:
        predictions[index] = label
    result = {"loss": loss_sum / len(split), **scores(task, split.labels, predictions, num_labels)}
    return result, predictions


@torch.inference_mode()
def predict(model: MultiTaskModel, tokenizer, texts: list[str], task: str | None = None,
            max_length: int = 64, batch_size: int = 128) -> pd.DataFrame:
    """Label new tweets with every head (or only `task`'s): one row per tweet and task.

    Columns: text, task, label, and one probability column per label name of that task.
    No texts give an empty table with the columns text, task and label.
    """
    if isinstance(model, str | Path):
        raise TypeError(f"predict takes a loaded model, not the folder {str(model)!r}: "
                        "predict_run(folder, texts) labels with a run or saved model folder")
    if isinstance(texts, str):
        texts = [texts]
    if not 1 <= max_length <= tokenizer.model_max_length:
        raise ValueError(f"max_length must be between 1 and this tokenizer's {tokenizer.model_max_length} "
                         f"tokens, got {max_length}")
    tasks = [task] if task else model.tasks
    for name in tasks:
        if name not in model.task_labels:
            raise KeyError(f"no head for task {name!r}; this model has {model.tasks}")
    if not texts:
        return pd.DataFrame(columns=["text", "task", "label"])
    model.eval()
    device = next(model.parameters()).device
    split = encode(tokenizer, pd.DataFrame({"text": list(texts), "label": [0] * len(texts)}), max_length)
    probabilities = {name: [None] * len(texts) for name in tasks}
    for indices in evaluation_batches(split, batch_size):
        batch = to_device(split.batch(indices, with_labels=False), device)
        for name, found in task_probabilities(model, batch, tasks).items():
            for i, row in zip(indices, found):
                probabilities[name][i] = row
    rows = []
    for name in tasks:
        labels = model.task_labels[name]
        for text, row in zip(texts, probabilities[name]):
            best = max(range(len(row)), key=row.__getitem__)
            rows.append({"text": text, "task": name, "label": labels[best], **dict(zip(labels, row))})
    return pd.DataFrame(rows)


def task_probabilities(model, batch: dict, tasks: list[str]) -> dict[str, list[list[float]]]:
    """Each task's label probabilities for a batch of tweets. A LoRA model asked about several tasks makes
    one forward pass: every tweet once per task, each row through its task's adapter (`mixed_logits`)."""
    if not isinstance(model, LoraSharing) or len(tasks) == 1:
        return {name: model(batch["input_ids"], batch["attention_mask"], name).float().softmax(-1).tolist()
                for name in tasks}
    rows = [name for name in tasks for _ in range(len(batch["input_ids"]))]
    logits = model.mixed_logits(batch["input_ids"].repeat(len(tasks), 1),
                                batch["attention_mask"].repeat(len(tasks), 1), rows)
    found = [row.float().softmax(-1).cpu().tolist() for row in logits]
    size = len(batch["input_ids"])
    return {name: found[index * size:(index + 1) * size] for index, name in enumerate(tasks)}


def test_best_checkpoints(folder: Path, model: MultiTaskModel, encoded: dict[str, dict[str, EncodedSplit]],
                          best: dict, batch_size: int = 128, accelerator: Accelerator | None = None) -> dict:
    """Score each task on test with its OWN best checkpoint (the epoch with its best dev score)."""
    results = {}
    for name in encoded:
        num_labels = len(model.task_labels[name])
        restore_best(model, folder, name)
        test, _ = evaluate_split(model, encoded[name]["test"], name, num_labels, batch_size, accelerator)
        majority = majority_baseline(name, encoded[name]["train"].labels, encoded[name]["test"].labels,
                                     num_labels)
        results[name] = {"official_metric": official_metric_name(name), "best_epoch": best[name]["epoch"],
                         "dev": best[name], "test": test, "test_examples": len(encoded[name]["test"]),
                         "test_majority_baseline": majority}
    return results


# ---------------------------------------------------------------------------------------------
# Whole runs: scored again, or asked about new tweets
# ---------------------------------------------------------------------------------------------


def evaluate_run(folder: str | Path, split: str = "test") -> pd.DataFrame:
    """Score every task of a run on `split`, each with its own best checkpoint: one row per task."""
    config = load_config(folder)
    rows = []
    for name, task in load_run_tasks(config).items():
        model, tokenizer = load_best(folder, name)
        split_data = encode(tokenizer, task.splits[split], config.max_length)
        result, _ = evaluate_split(model, split_data, name, task.num_labels, config.eval_batch_size)
        rows.append({"task": name, "split": split, "official_metric": official_metric_name(name), **result})
    return pd.DataFrame(rows)


def predict_run(folder: str | Path, texts: list[str], task: str | None = None,
                max_length: int = 64) -> pd.DataFrame:
    """Label texts with a run's best checkpoint of each task (or with a saved model folder). With lora or soft
    sharing one model holds every task's best part; with lora, one pass labels the texts for every task."""
    folder = Path(folder)
    if not is_run(folder):
        model, tokenizer = load_model(folder)
        return predict(model, tokenizer, texts, task, max_length)
    names = run_task_names(folder)
    if task is not None and task not in names:  # a name, never a path: "--task ../x" reads nothing
        raise KeyError(f"run {folder} has no task {task!r}; its tasks are {names}")
    if load_config(folder).sharing != "hard":
        model, tokenizer = best_models(folder)[names[0]]
        return predict(model, tokenizer, texts, task, max_length)
    frames = []
    for name in [task] if task else names:
        model, tokenizer = load_best(folder, name)
        frames.append(predict(model, tokenizer, texts, name, max_length))
    return pd.concat(frames, ignore_index=True)


def results_table(results: dict) -> pd.DataFrame:
    """One row per task: its official metric, best epoch, dev and test scores, and the majority baseline."""
    rows = [{"task": task, "metric": result["official_metric"], "best epoch": result["best_epoch"],
             "dev": result["dev"]["official"], "test": result["test"]["official"],
             "test accuracy": result["test"]["accuracy"],
             "majority baseline (test)": result["test_majority_baseline"]["official"]}
            for task, result in results.items()]
    return pd.DataFrame(rows).set_index("task")


# ---------------------------------------------------------------------------------------------
# Predictions of a run, tweet by tweet
# ---------------------------------------------------------------------------------------------


def predictions_on_test(folder: str | Path, task: str, checkpoint: str = BEST_FOLDER) -> pd.DataFrame:
    """Every test tweet of `task` with its true and predicted label, from the run's best (or last) checkpoint.

    The two label columns are categoricals over the task's label names, in label-id order.
    """
    config = load_config(folder)
    test = load_run_tasks(config, [task])[task].splits["test"]
    model, tokenizer = load_best(folder, task) if checkpoint == BEST_FOLDER else load_last(folder)
    names = model.task_labels[task]
    table = predict(model, tokenizer, test["text"].tolist(), task, config.max_length, config.eval_batch_size)
    return pd.DataFrame({"text": test["text"],
                         "true": pd.Categorical.from_codes(test["label"], names),
                         "predicted": pd.Categorical(table["label"], categories=names)})


def label_tweet(models: dict, text: str) -> pd.DataFrame:
    """Every head's answer for one tweet: one row per (task, label) with its probability."""
    rows = []
    for task, (model, tokenizer) in models.items():
        answer = predict(model, tokenizer, [text], task).iloc[0]
        rows += [{"task": task, "label": label, "probability": answer[label],
                  "chosen": label == answer["label"]} for label in model.task_labels[task]]
    return pd.DataFrame(rows)
