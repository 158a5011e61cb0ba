"""Lesson step 1, the data: find or download each task's tweets, read them, write them.

A task is a name, its label names and three splits (train, dev, test) of texts with integer labels.
TweetEval tasks come by name (downloaded once, checksummed); a course-style TSV folder works too, and so do
a saved `datasets` DatasetDict and train/dev/test files in CSV, JSON Lines or Parquet.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .checksums import TWEETEVAL_SHA256
from .files import staged_folder, write_atomically

# The public TweetEval repository, pinned to the commit whose files the checksums describe.
TWEETEVAL_URL = (
    "https://raw.githubusercontent.com/cardiffnlp/tweeteval/"
    "4fbd22cd78421f05b1ecdb4fc5725bc7a7bd8f66/datasets"
)
STANCE_TARGETS = ("abortion", "atheism", "climate", "feminist", "hillary")
TWEETEVAL_TASKS = ("emotion", "sentiment", "irony", "hate", "offensive", "emoji") + tuple(
    f"stance_{target}" for target in STANCE_TARGETS
)
SPLITS = ("train", "dev", "test")
TWEETEVAL_SPLIT_NAMES = {"train": "train", "dev": "val", "test": "test"}  # TweetEval says "val"

DATA_DIR_VARIABLE = "MTL_TUTORIAL_DATA_DIR"  # an existing copy of TweetEval's datasets/ folder
CACHE_DIR_VARIABLE = "MTL_TUTORIAL_CACHE"  # where downloads go (default ~/.cache/mtl_tutorial)
BASE_URL_VARIABLE = "MTL_TUTORIAL_BASE_URL"  # another mirror of datasets/, e.g. file:///...
TASK_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
LABEL_ID = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() also accepts "²", which int() refuses


class DataError(ValueError):
    """Input data that cannot be used; the message names the file, line or value."""


@dataclass
class Task:
    """One classification task: its label names and a DataFrame (text, label) per split."""

    name: str
    label_names: list[str]
    splits: dict[str, pd.DataFrame]
    source: str = ""

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def sizes(self) -> dict[str, int]:
        """Number of examples in each split."""
        return {split: len(frame) for split, frame in self.splits.items()}

    def capped(self, max_train_examples: int | None = None, max_eval_examples: int | None = None,
               seed: int = 77) -> "Task":
        """The same task with at most `max_train_examples` training tweets and `max_eval_examples`
        dev and test tweets, each a random sample fixed by `seed` (None keeps a split whole)."""
        limits = {"train": max_train_examples, "dev": max_eval_examples, "test": max_eval_examples}
        splits = {}
        for split, frame in self.splits.items():
            limit = limits.get(split)
            if limit is not None and limit < 1:
                raise DataError(f"a cap on examples must be at least 1, got {limit} for {split}")
            if limit is not None and limit < len(frame):
                frame = frame.sample(n=limit, random_state=seed).reset_index(drop=True)
            splits[split] = frame
        return Task(self.name, self.label_names, splits, self.source)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split} {size}" for split, size in self.sizes().items())
        return f"Task({self.name!r}, labels={self.label_names}, {sizes})"


# ---------------------------------------------------------------------------------------------
# Finding and downloading TweetEval
# ---------------------------------------------------------------------------------------------


def tweeteval_folder(task: str) -> str:
    """The task's folder inside TweetEval's datasets/ (stance targets live under stance/)."""
    check_tweeteval_name(task)
    return task.replace("stance_", "stance/") if task.startswith("stance_") else task


def tweeteval_files(task: str) -> list[str]:
    """Every file the task needs, relative to TweetEval's datasets/ folder."""
    folder = tweeteval_folder(task)
    mapping = "stance/mapping.txt" if task.startswith("stance_") else f"{folder}/mapping.txt"
    names = [f"{folder}/{TWEETEVAL_SPLIT_NAMES[split]}_{kind}.txt"
             for split in SPLITS for kind in ("text", "labels")]
    return [mapping, *names]


def check_tweeteval_name(task: str) -> None:
    if task not in TWEETEVAL_TASKS:
        raise DataError(
            f"unknown task {task!r}: choose one of {', '.join(TWEETEVAL_TASKS)}, or give a folder"
        )


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_VARIABLE, Path.home() / ".cache" / "mtl_tutorial"))


def download_file(url: str, destination: Path, sha256: str) -> Path:
    """Download `url` to `destination`, check its SHA-256, and only then move it into place.

    `files.write_atomically` writes beside the destination and renames: a broken download or a
    checksum mismatch leaves nothing where a reader would find it.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)

    def fetch(partial: Path) -> None:
        digest = hashlib.sha256()
        with open(partial, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name, leave=False) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != sha256:
            raise DataError(f"checksum mismatch for {url}: expected sha256 {sha256}, "
                            f"got {digest.hexdigest()}; the file was not saved")

    try:
        write_atomically(destination, fetch)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:  # HTTPException: cut off
        raise DataError(f"could not download {url}: {error}") from error
    return destination


def download_tweeteval(task: str, cache_dir: str | Path | None = None, base_url: str | None = None) -> Path:
    """Fetch one TweetEval task into the cache (once) and return the cache's datasets/ folder.

    `base_url` may be any mirror of TweetEval's datasets/ folder, including a `file://` URL.
    Files already in the cache with the right checksum are not fetched again.
    """
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    root = root / "tweeteval"
    base_url = (base_url or os.environ.get(BASE_URL_VARIABLE) or TWEETEVAL_URL).rstrip("/")
    for relative in tweeteval_files(task):
        target = root / relative
        expected = TWEETEVAL_SHA256[relative]
        if target.exists() and sha256_of(target) == expected:
            continue
        download_file(f"{base_url}/{relative}", target, expected)
    return root


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Reading the two folder formats
# ---------------------------------------------------------------------------------------------


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file: a BOM and CRLF endings are accepted, empty lines kept."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text: {error}") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_tweeteval_mapping(path: Path) -> list[str]:
    """Label names from a mapping.txt of `id<TAB>name` lines, in id order.

    Further columns are ignored: emoji's mapping says `0<TAB>❤<TAB>_red_heart_<TAB>`, and its label is ❤.
    """
    names = {}
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not LABEL_ID.fullmatch(fields[0].strip()) or not fields[1].strip():
            raise DataError(f"{path}, line {number}: expected 'id<TAB>name', got {line!r}")
        if int(fields[0]) in names:
            raise DataError(f"{path}, line {number}: label id {int(fields[0])} is given twice")
        names[int(fields[0])] = fields[1].strip()
    if sorted(names) != list(range(len(names))):
        raise DataError(f"{path}: label ids must be 0..{len(names) - 1}, got {sorted(names)}")
    return [names[index] for index in range(len(names))]


def read_tweeteval_split(folder: Path, split: str, num_labels: int) -> pd.DataFrame:
    """One split of a TweetEval folder: `<split>_text.txt` aligned line by line with `<split>_labels.txt`."""
    name = TWEETEVAL_SPLIT_NAMES[split]
    text_path, label_path = folder / f"{name}_text.txt", folder / f"{name}_labels.txt"
    texts, label_lines = read_lines(text_path), read_lines(label_path)
    if len(texts) != len(label_lines):
        raise DataError(f"{text_path} has {len(texts)} lines but {label_path} has {len(label_lines)}")
    labels = []
    for number, line in enumerate(label_lines, start=1):
        value = line.strip()
        if not LABEL_ID.fullmatch(value) or int(value) >= num_labels:
            raise DataError(f"{label_path}, line {number}: "
                            f"label {value!r} is not an id in 0..{num_labels - 1}")
        labels.append(int(value))
    return pd.DataFrame({"text": texts, "label": labels})


def read_tweeteval_folder(folder: Path, name: str, mapping: Path | None = None) -> Task:
    """A task stored as TweetEval stores it: mapping.txt and {train,val,test}_{text,labels}.txt."""
    label_names = read_tweeteval_mapping(mapping or folder / "mapping.txt")
    splits = {split: read_tweeteval_split(folder, split, len(label_names)) for split in SPLITS}
    return checked(Task(name, label_names, splits, source=str(folder)))


def read_tsv_split(path: Path, label2ind: dict[str, int]) -> pd.DataFrame:
    """One split in the course's format: a TSV with a header and `content`, `label` columns.

    Quoting is off, as in the course: a quote is part of the tweet, and a tab can only separate columns.
    """
    lines = read_lines(path)
    if not lines:
        raise DataError(f"{path} is empty: it needs a header line with 'content' and 'label'")
    header = lines[0].split("\t")
    missing = {"content", "label"} - set(header)
    if missing:
        raise DataError(f"{path} lacks the column(s) {sorted(missing)}; its header has {header}")
    text_column, label_column = header.index("content"), header.index("label")
    texts, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(f"{path}, line {number}: {len(fields)} tab-separated fields where the header has "
                            f"{len(header)} (a tab inside the tweet?)")
        if fields[label_column] not in label2ind:
            raise DataError(f"{path}, line {number}: label {fields[label_column]!r} is not in label2ind.json "
                            f"({sorted(label2ind)})")
        texts.append(fields[text_column])
        labels.append(label2ind[fields[label_column]])
    return pd.DataFrame({"text": texts, "label": labels})


def read_tsv_folder(folder: Path, name: str) -> Task:
    """A task in the course's format: train.tsv, dev.tsv, test.tsv and label2ind.json."""
    mapping_path = folder / "label2ind.json"
    try:
        label2ind = json.loads(mapping_path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{mapping_path} is not valid UTF-8 JSON: {error}") from None
    if (not isinstance(label2ind, dict) or not all(type(index) is int for index in label2ind.values())
            or sorted(label2ind.values()) != list(range(len(label2ind)))):
        raise DataError(f"{mapping_path} must map each label name to a distinct index 0..n-1, "
                        f"got {label2ind}")
    label_names = sorted(label2ind, key=label2ind.get)
    splits = {split: read_tsv_split(folder / f"{split}.tsv", label2ind) for split in SPLITS}
    return checked(Task(name, label_names, splits, source=str(folder)))


def checked(task: Task) -> Task:
    """Refuse a task that cannot be trained or scored: an empty split or a single class."""
    for split, frame in task.splits.items():
        if len(frame) == 0:
            raise DataError(f"task {task.name!r}: the {split} split in {task.source} is empty")
    if task.num_labels < 2 or task.splits["train"]["label"].nunique() < 2:
        raise DataError(f"task {task.name!r}: training data in {task.source} has fewer than two classes")
    return task


def task_name(name_or_folder: str | Path) -> str:
    """The name a task goes by: a TweetEval name as it is, a folder by its own name."""
    path = Path(name_or_folder)
    return path.resolve().name if path.is_dir() else str(name_or_folder)


def load_task(
    name_or_folder: str | Path,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
) -> Task:
    """Load a task by TweetEval name (from `data_dir`, or downloaded once), or from a folder.

    A folder may be in TweetEval's layout (mapping.txt, train_text.txt, ...), the course's
    (train.tsv, dev.tsv, test.tsv, label2ind.json), a saved DatasetDict, or train/dev/test files in
    CSV, JSON Lines or Parquet (see `tables.read_table_folder`); the folder's name becomes the task name.
    """
    path = Path(name_or_folder)
    if path.is_dir():
        name = task_name(path)
        if not TASK_NAME_PATTERN.match(name):
            raise DataError(f"folder name {name!r} cannot be a task name: use letters, digits, _ and -")
        if (path / "label2ind.json").exists():
            return read_tsv_folder(path, name)
        if (path / "mapping.txt").exists():
            return read_tweeteval_folder(path, name)
        from .tables import is_table_folder, read_table_folder  # tables builds on this module's Task

        if is_table_folder(path):
            return read_table_folder(path, name)
        raise DataError(f"{path} holds neither label2ind.json (course format), mapping.txt (TweetEval "
                        "format), a saved DatasetDict nor train.csv/.jsonl/.parquet")
    name = str(name_or_folder)
    check_tweeteval_name(name)
    data_dir = data_dir or os.environ.get(DATA_DIR_VARIABLE)
    root = Path(data_dir) if data_dir else download_tweeteval(name, cache_dir, base_url)
    mapping = root / tweeteval_files(name)[0]
    return read_tweeteval_folder(root / tweeteval_folder(name), name, mapping)


def load_tasks(names: list[str], **where) -> dict[str, Task]:
    """Several tasks at once, keyed by name; `where` is passed on to `load_task`."""
    tasks = {}
    for name in names:
        task = load_task(name, **where)
        if task.name in tasks:
            raise DataError(f"task {task.name!r} is named twice")
        tasks[task.name] = task
    if not tasks:
        raise DataError("no task given")
    return tasks


def write_tsv_folder(task: Task, folder: str | Path) -> Path:
    """Write a task in the course's format (train/dev/test.tsv + label2ind.json), all or nothing."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise DataError(f"{folder} already exists and is not empty")
    with staged_folder(folder) as staging:
        for split, frame in task.splits.items():
            # TSV without quoting has no room for tabs or newlines
            texts = frame["text"].str.replace("[\t\n]", " ", regex=True)
            changed = int((texts != frame["text"]).sum())
            if changed:
                warnings.warn(f"task {task.name!r}, {split}: "
                              f"a tab or newline in {changed} tweet(s) became a space")
            rows = [f"{text}\t{task.label_names[label]}\n" for text, label in zip(texts, frame["label"])]
            (staging / f"{split}.tsv").write_text("content\tlabel\n" + "".join(rows), encoding="utf-8")
        label2ind = {name: index for index, name in enumerate(task.label_names)}
        (staging / "label2ind.json").write_text(json.dumps(label2ind, ensure_ascii=False, indent=1),
                                                encoding="utf-8")
    return folder
