"""Lesson step 8, how much the tasks share: one encoder (hard), one LoRA adapter per task, or soft sharing.

hard: every task trains the one encoder and its own head (Caruana 1997). lora: the pre-trained encoder is
frozen; each task trains only its own low-rank adapter (Hu et al. 2021, through PEFT) and its head. soft:
each task has its own copy of the encoder and its head; an L2 penalty pulls the copies together (Duong et
al. 2015). Every model answers the same calls, so the training loop need not know which it trains.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file
from torch import nn

from .config import SHARINGS, TrainConfig
from .files import staged_folder
from .model import (ClassificationHead, MultiTaskModel, load_encoder, sequence_representation, with_loss,
                    write_weights)

TASK_WEIGHTS_FILE = "task.safetensors"
TASK_DESCRIPTION_FILE = "task_sharing.json"


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{key}": tensor for key, tensor in state.items()}


def part_of(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of `state` under `prefix.`, with the prefix taken off."""
    start = len(prefix) + 1
    return {key[start:]: tensor for key, tensor in state.items() if key.startswith(f"{prefix}.")}


class TaskParts:
    """The calls every sharing answers, written once for the models whose tasks each have an encoder
    (shared or their own) and a head; `own_encoder(task)` says which encoder serves a task."""

    def task_state_dict(self, task: str) -> dict[str, torch.Tensor]:
        """What `task`'s best checkpoint holds: the encoder it uses and its head (not copies)."""
        return {**prefixed("encoder", self.own_encoder(task).state_dict()),
                **prefixed("head", self.heads[task].state_dict())}

    def load_task_state_dict(self, task: str, state: dict[str, torch.Tensor]) -> None:
        self.own_encoder(task).load_state_dict(part_of(state, "encoder"))
        self.heads[task].load_state_dict(part_of(state, "head"))

    def mixed_features(self, input_ids, attention_mask, tasks: list[str]) -> torch.Tensor:
        """One vector per tweet, each through the encoder of its own task (rows grouped by task)."""
        features = [None] * len(tasks)
        for task in dict.fromkeys(tasks):
            rows = [row for row, name in enumerate(tasks) if name == task]
            mask = attention_mask[rows]
            outputs = self.own_encoder(task)(input_ids=input_ids[rows], attention_mask=mask)
            for row, vector in zip(rows, sequence_representation(outputs, mask, self.pooling)):
                features[row] = vector
        return torch.stack(features)

    def mixed_logits(self, input_ids, attention_mask, tasks: list[str]) -> list[torch.Tensor]:
        """A batch of tweets of different tasks: row i gets the logits of `tasks[i]`'s head."""
        if len(tasks) != len(input_ids):
            raise ValueError(f"{len(input_ids)} tweets but {len(tasks)} task names: give one task per tweet")
        unknown = sorted(set(tasks) - set(self.heads))
        if unknown:
            raise KeyError(f"no head for tasks {unknown}; this model has {list(self.heads)}")
        features = self.mixed_features(input_ids, attention_mask, tasks)
        return [self.heads[task](vector[None])[0] for task, vector in zip(tasks, features)]


class HardSharing(TaskParts, MultiTaskModel):
    """Hard sharing, today's `MultiTaskModel`: one encoder that every task trains, one head per task."""

    def own_encoder(self, task: str) -> nn.Module:
        return self.encoder

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters every task trains: the whole encoder."""
        return list(self.encoder.parameters())

    def mixed_features(self, input_ids, attention_mask, tasks: list[str]) -> torch.Tensor:
        """One pass of the shared encoder serves every task of the batch."""
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return sequence_representation(outputs, attention_mask, self.pooling)


class LoraSharing(HardSharing):
    """The pre-trained encoder frozen; per task one LoRA adapter (W x + (alpha / r) B A x on each target
    layer, PEFT names it after the task) and a head. The task of a batch selects its adapter."""

    def __init__(self, encoder: nn.Module, task_labels: dict[str, list[str]], pooling: str = "mean",
                 rank: int = 8, alpha: float = 16.0, target_modules=("query", "value"),
                 lora_dropout: float = 0.1):
        from peft import LoraConfig, get_peft_model  # PEFT loads in seconds: only runs that use it pay

        tasks = list(task_labels)
        adapter = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(target_modules),
                             lora_dropout=lora_dropout)
        with warnings.catch_warnings():  # PEFT 0.21 asks transformers 5 a question it renamed
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            wrapped = get_peft_model(encoder, adapter, adapter_name=tasks[0])  # freezes the encoder's weights
        for task in tasks[1:]:
            wrapped.add_adapter(task, adapter)
        super().__init__(wrapped, task_labels, pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task: str,
                labels: torch.Tensor | None = None, reduction: str = "mean"):
        if task in self.heads and self.encoder.active_adapter != task:
            self.encoder.set_adapter(task)  # only the active adapter requires a gradient
        return super().forward(input_ids, attention_mask, task, labels, reduction)

    def adapter_parameters(self, task: str) -> list[nn.Parameter]:
        return [parameter for name, parameter in self.encoder.named_parameters()
                if ".lora_" in name and f".{task}." in name]

    def shared_parameters(self) -> list[nn.Parameter]:
        """None: the shared encoder is frozen, each task trains only its own adapter and head."""
        return []

    def trained_parameters(self) -> list[nn.Parameter]:
        return [parameter for task in self.heads
                for parameter in (*self.adapter_parameters(task), *self.heads[task].parameters())]

    def task_state_dict(self, task: str) -> dict[str, torch.Tensor]:
        """`task`'s adapter and head, not the frozen encoder that every task's checkpoint would repeat."""
        from peft import get_peft_model_state_dict

        adapter = get_peft_model_state_dict(self.encoder, adapter_name=task)
        return {**prefixed("adapter", adapter), **prefixed("head", self.heads[task].state_dict())}

    def load_task_state_dict(self, task: str, state: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        adapter = part_of(state, "adapter")
        expected = {name for name in self.encoder.state_dict() if ".lora_" in name and f".{task}." in name}
        if len(adapter) != len(expected):
            raise ValueError(f"{task}'s adapter has {len(expected)} weights, the state given {len(adapter)}")
        set_peft_model_state_dict(self.encoder, adapter, adapter_name=task)
        self.heads[task].load_state_dict(part_of(state, "head"))

    def mixed_features(self, input_ids, attention_mask, tasks: list[str]) -> torch.Tensor:
        """One pass of the encoder for the whole batch, each row through its own task's adapter."""
        if self.training:
            raise RuntimeError("a batch of mixed tasks is for prediction: call model.eval() first")
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask, adapter_names=list(tasks))
        return sequence_representation(outputs, attention_mask, self.pooling)


def soft_penalty(encoders: list[nn.Module], strength: float) -> torch.Tensor:
    """Duong et al. (2015)'s tie: strength / 2 * sum over pairs i < j of ||theta_i - theta_j||^2.

    Computed as strength / 2 * N * sum_i ||theta_i - mean||^2, the same number (N copies); its gradient on
    copy i is strength * N * (theta_i - mean), a pull towards the copies' mean."""
    total = torch.zeros((), device=next(encoders[0].parameters()).device)
    if strength == 0 or len(encoders) < 2:
        return total
    for copies in zip(*(encoder.parameters() for encoder in encoders)):
        stacked = torch.stack(copies)
        total = total + (stacked - stacked.mean(0)).pow(2).sum()
    return strength / 2 * len(encoders) * total


class SoftSharing(TaskParts, nn.Module):
    """Soft sharing: each task its own copy of the pre-trained encoder and its head; `penalty()` ties the
    copies. At strength 0 these are separate single-task models trained side by side."""

    def __init__(self, encoder: nn.Module, task_labels: dict[str, list[str]], pooling: str = "mean",
                 strength: float = 0.01, dropout: float = 0.1):
        super().__init__()
        self.pooling, self.strength = pooling, strength
        self.task_labels = {task: list(labels) for task, labels in task_labels.items()}
        tasks = list(task_labels)
        self.encoders = nn.ModuleDict({task: encoder if index == 0 else copy.deepcopy(encoder)
                                       for index, task in enumerate(tasks)})
        hidden = encoder.config.hidden_size
        self.heads = nn.ModuleDict({task: ClassificationHead(hidden, len(labels), dropout)
                                    for task, labels in task_labels.items()})

    tasks = MultiTaskModel.tasks
    loss = MultiTaskModel.loss
    trained_parameters = MultiTaskModel.trained_parameters  # every copy and head

    def own_encoder(self, task: str) -> nn.Module:
        return self.encoders[task]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task: str,
                labels: torch.Tensor | None = None, reduction: str = "mean"):
        """Logits of `task`'s head on its own encoder copy (and their loss, given the labels)."""
        if task not in self.heads:
            raise KeyError(f"no head for task {task!r}; this model has {self.tasks}")
        outputs = self.encoders[task](input_ids=input_ids, attention_mask=attention_mask)
        return with_loss(self.heads[task](sequence_representation(outputs, attention_mask, self.pooling)),
                         labels, reduction)

    def penalty(self) -> torch.Tensor:
        return soft_penalty(list(self.encoders.values()), self.strength)

    def shared_parameters(self) -> list[nn.Parameter]:
        """None: each copy is trained by its own task (and pulled by the penalty)."""
        return []


def hard_sharing(encoder, task_labels: dict[str, list[str]], config: TrainConfig) -> HardSharing:
    return HardSharing(encoder, task_labels, config.pooling)


def lora_sharing(encoder, task_labels: dict[str, list[str]], config: TrainConfig) -> LoraSharing:
    return LoraSharing(encoder, task_labels, config.pooling, config.lora_rank, config.lora_alpha,
                       config.lora_target_modules, config.lora_dropout)


def soft_sharing(encoder, task_labels: dict[str, list[str]], config: TrainConfig) -> SoftSharing:
    return SoftSharing(encoder, task_labels, config.pooling, config.soft_penalty)


BUILDERS = {"hard": hard_sharing, "lora": lora_sharing, "soft": soft_sharing}
assert tuple(BUILDERS) == SHARINGS, "config.SHARINGS lists the ways of sharing built here"


def build_shared_model(task_labels: dict[str, list[str]], config: TrainConfig):
    """A fresh model sharing as `config.sharing` says (pre-trained encoder, new heads), and its tokenizer."""
    encoder, tokenizer = load_encoder(config.model)
    return BUILDERS[config.sharing](encoder, task_labels, config), tokenizer


def sharing_of(model: nn.Module) -> str:
    kinds = {MultiTaskModel: "hard", HardSharing: "hard", LoraSharing: "lora", SoftSharing: "soft"}
    return kinds[type(model)]


def save_task_checkpoint(model, task: str, folder: str | Path, extra: dict | None = None) -> Path:
    """Write `task`'s part of the model (`task_state_dict`) to `folder` as safetensors, with its labels."""
    with staged_folder(folder) as staging:
        description = {"sharing": sharing_of(model), "task": task, "labels": model.task_labels[task],
                       "pooling": model.pooling, "task_labels": model.task_labels, **(extra or {})}
        write_weights(staging / TASK_WEIGHTS_FILE, model.task_state_dict(task),
                      staging / TASK_DESCRIPTION_FILE, description)
    return Path(folder)


def read_task_description(folder: str | Path) -> dict:
    """What `save_task_checkpoint` wrote beside the weights: sharing, task, labels, pooling and the extras."""
    path = Path(folder) / TASK_DESCRIPTION_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise OSError(f"{folder} holds no readable task checkpoint ({error.__class__.__name__}: {error})"
                      ) from error


def load_task_checkpoint(model, folder: str | Path) -> str:
    """Load a checkpoint written by `save_task_checkpoint` into `model` (same sharing); returns its task."""
    folder = Path(folder)
    try:
        description = json.loads((folder / TASK_DESCRIPTION_FILE).read_text(encoding="utf-8"))
        task = description["task"]
        if description["sharing"] != sharing_of(model) or task not in model.heads:
            raise ValueError(f"it holds task {task!r} of a {description['sharing']} model, not one of "
                             f"{list(model.heads)} of a {sharing_of(model)} model")
        model.load_task_state_dict(task, load_file(folder / TASK_WEIGHTS_FILE))
    except Exception as error:  # json, safetensors and torch each raise their own kinds
        reason = (str(error).splitlines() or [""])[0][:300]
        raise OSError(f"cannot load the task checkpoint in {folder} ({error.__class__.__name__}: {reason})"
                      ) from error
    return task


def trained_weights(model) -> dict[str, torch.Tensor]:
    """The weights that training changes, by their names in the model: what a resumable checkpoint of a lora
    or soft model keeps (the frozen encoder is rebuilt from the run's settings)."""
    trained = {id(parameter) for parameter in model.trained_parameters()}
    return {name: parameter.detach().cpu().contiguous() for name, parameter in model.named_parameters()
            if id(parameter) in trained}


def load_trained_weights(model, weights: dict[str, torch.Tensor]) -> None:
    """Put `trained_weights` back into a model built with the same settings: all trained weights."""
    missing = sorted(set(trained_weights(model)) - set(weights))
    if missing:
        raise ValueError(f"{len(missing)} trained weights are missing, e.g. {missing[0]}")
    unexpected = model.load_state_dict(weights, strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"{len(unexpected)} weights are not this model's, e.g. {unexpected[0]}")


def parameter_table(models: dict[str, nn.Module]) -> pd.DataFrame:
    """Per sharing and task, counted from the models: the parameters trained by that task alone, those every
    task trains, those frozen, and how many numbers the task's best checkpoint stores."""
    rows = []
    for sharing, model in models.items():
        trained = {id(p) for p in model.trained_parameters()}
        shared = {id(p) for p in model.shared_parameters()}
        frozen = sum(p.numel() for p in model.parameters() if id(p) not in trained)
        by_storage = {p.data_ptr(): p for p in model.parameters() if id(p) in trained and id(p) not in shared}
        for task in model.heads:
            state = model.task_state_dict(task)
            own = {tensor.data_ptr() for tensor in state.values()} & set(by_storage)
            rows.append({"sharing": sharing, "task": task,
                         "trained by this task alone": sum(by_storage[ptr].numel() for ptr in own),
                         "trained by every task": sum(p.numel() for p in model.shared_parameters()),
                         "frozen": frozen,
                         "stored in its checkpoint": sum(tensor.numel() for tensor in state.values())})
    return pd.DataFrame(rows).set_index(["sharing", "task"])
