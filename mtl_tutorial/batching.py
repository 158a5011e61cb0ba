"""Lesson step 1, batching: tokenise each split once, pad each batch only to its own longest tweet.

Training batches come from a `BatchStream` per task that reshuffles on every pass; evaluation batches
are sorted by length. Every batch, for training, scoring or prediction, is made by `EncodedSplit.batch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from .data import DataError, Task


@dataclass
class EncodedSplit:
    """A split tokenised once: token ids per tweet (no padding yet), their labels, and the pad id."""

    input_ids: list[list[int]]
    labels: list[int]
    pad_id: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    def batch(self, indices: list[int], with_labels: bool = True) -> dict:
        """The tweets at `indices` as one padded batch of tensors (the only collate function there is)."""
        labels = [self.labels[i] for i in indices] if with_labels else None
        return pad_batch([self.input_ids[i] for i in indices], self.pad_id, labels)


def encode(tokenizer, frame: pd.DataFrame, max_length: int = 64) -> EncodedSplit:
    """Tokenise every text of a split in one call; truncate, but do not pad."""
    texts = frame["text"].tolist()
    for row, text in enumerate(texts):
        if not isinstance(text, str):  # e.g. NaN where pandas read an empty cell or "NA"
            raise DataError(f"row {row}: text {text!r} is not a string "
                            "(read files with keep_default_na=False)")
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return EncodedSplit(ids, frame["label"].tolist(), tokenizer.pad_token_id)


def encode_task(tokenizer, task: Task, max_length: int = 64) -> dict[str, EncodedSplit]:
    """Every split of a task, tokenised once."""
    return {split: encode(tokenizer, frame, max_length) for split, frame in task.splits.items()}


def pad_batch(sequences: list[list[int]], pad_id: int, labels: list[int] | None = None) -> dict:
    """Pad a batch to its own longest sequence: input_ids, attention_mask (and labels)."""
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if labels is not None:
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
    return batch


def to_device(batch: dict, device) -> dict:
    """The same batch with every tensor on `device` (the GPU, when there is one)."""
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def shuffled_batches(lengths: list[int], batch_size: int, seed: int,
                     group_by_length: bool = True) -> list[list[int]]:
    """One pass over a split as batches of indices, in a random order fixed by `seed`.

    With `group_by_length`, tweets are shuffled, cut into chunks of 50 batches, sorted by length
    inside each chunk, and the batches shuffled again: still random, far less padding.
    """
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if group_by_length:
        chunk = batch_size * 50
        order = [i for start in range(0, len(order), chunk)
                 for i in sorted(order[start : start + chunk], key=lengths.__getitem__)]
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


class BatchStream:
    """Endless training batches of one task, reshuffled on every pass over its data.

    The order of pass k depends only on (seed, k), so the stream can resume from
    (passes, position) and processes of a multi-process run can each take their share.
    """

    def __init__(self, split: EncodedSplit, batch_size: int, seed: int = 77, group_by_length: bool = True,
                 rank: int = 0, world_size: int = 1):
        self.split, self.batch_size, self.seed = split, batch_size, seed
        self.group_by_length, self.rank, self.world_size = group_by_length, rank, world_size
        self.lengths = split.lengths()
        self.passes, self.position = 0, 0
        self.batches = self.new_pass()

    def new_pass(self) -> list[list[int]]:
        global_batches = shuffled_batches(self.lengths, self.batch_size * self.world_size,
                                          self.seed * 100_003 + self.passes, self.group_by_length)
        return [batch[self.rank :: self.world_size] or batch[:1] for batch in global_batches]

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self.position == len(self.batches):
            self.passes, self.position = self.passes + 1, 0
            self.batches = self.new_pass()
        indices = self.batches[self.position]
        self.position += 1
        return self.split.batch(indices)

    def state_dict(self) -> dict:
        return {"passes": self.passes, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.passes, self.position = state["passes"], state["position"]
        self.batches = self.new_pass()


def evaluation_batches(split: EncodedSplit, batch_size: int = 128) -> list[list[int]]:
    """Batches for evaluation: sorted by length (least padding), in a fixed order."""
    order = sorted(range(len(split)), key=lambda i: len(split.input_ids[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def batches_per_pass(num_examples: int, batch_size: int) -> int:
    return -(-num_examples // batch_size)


def padding_waste(lengths: list[int], batch_size: int = 32, max_length: int = 64,
                  seed: int = 77) -> dict[str, float]:
    """The fraction of pad tokens in one pass over a split, for three ways of padding batches.

    A pad token costs as much compute as a real one, so this is the share of the work thrown away.
    """
    real = sum(lengths)

    def waste(batches: list[list[int]]) -> float:
        return 1 - real / sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)

    return {
        f"every tweet padded to {max_length} (the tutorial)": 1 - real / (len(lengths) * max_length),
        "each batch padded to its longest tweet":
            waste(shuffled_batches(lengths, batch_size, seed, group_by_length=False)),
        "... with length-grouped batches (our default)": waste(shuffled_batches(lengths, batch_size, seed)),
    }
