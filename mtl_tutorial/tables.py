"""Your own task in the formats people already have: a `datasets` DatasetDict saved with `save_to_disk`,
or train / dev (or validation) / test files in CSV, JSON Lines or Parquet, with `text` and `label` columns.

`data.load_task` reads a folder through `read_table_folder` when it holds one of these; a small task.json
names other columns. Every problem is one DataError naming the file and, where there is one, the row.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pandas as pd

from .data import LABEL_ID, SPLITS, DataError, Task, checked

TABLE_READERS = {".csv": "CSV", ".jsonl": "JSON Lines", ".parquet": "Parquet"}
SPLIT_FILE_NAMES = {"train": ("train",), "dev": ("dev", "validation"), "test": ("test",)}
TASK_JSON = "task.json"  # {"text": "<column>", "label": "<column>"} when the columns are named otherwise
SAVED_DATASET = "dataset_dict.json"  # what `DatasetDict.save_to_disk` writes beside its splits


def optional_package(package: str, needed_for: str):
    """Import `package`, or say in one line which package to install."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise DataError(f"{needed_for} needs the package {package!r}: pip install {package} "
                        "(or pip install 'mtl-tutorial[datasets]')") from None


def is_table_folder(folder: Path) -> bool:
    """True when `folder` holds a saved DatasetDict or a train file in CSV, JSON Lines or Parquet."""
    return (folder / SAVED_DATASET).exists() or any((folder / f"train{suffix}").exists()
                                                     for suffix in TABLE_READERS)


def column_names(folder: Path) -> tuple[str, str]:
    """The text and label columns: `text` and `label`, unless the folder's task.json names others."""
    path = folder / TASK_JSON
    if not path.exists():
        return "text", "label"
    try:
        columns = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid UTF-8 JSON: {error}") from None
    if not isinstance(columns, dict) or set(columns) - {"text", "label"} or not all(
            isinstance(value, str) and value for value in columns.values()):
        raise DataError(f'{path} must look like {{"text": "<column>", "label": "<column>"}}, got {columns}')
    return columns.get("text", "text"), columns.get("label", "label")


def split_file(folder: Path, split: str) -> Path:
    """The one file of `split` in `folder` (dev may be called validation), in any of the three formats."""
    found = [folder / f"{name}{suffix}" for name in SPLIT_FILE_NAMES[split] for suffix in TABLE_READERS
             if (folder / f"{name}{suffix}").exists()]
    if len(found) != 1:
        wanted = " or ".join(f"{name}.csv/.jsonl/.parquet" for name in SPLIT_FILE_NAMES[split])
        problem = "no" if not found else f"{len(found)} files ({', '.join(path.name for path in found)}):"
        raise DataError(f"{folder} has {problem} {split} split; it needs exactly one {wanted}")
    return found[0]


def read_table(path: Path) -> pd.DataFrame:
    """Every column of a CSV (as text), JSON Lines or Parquet file."""
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        if path.suffix == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
        optional_package("pyarrow", f"reading {path}")
        return pd.read_parquet(path)
    except DataError:
        raise
    except Exception as error:  # pandas and pyarrow each raise their own kinds
        reason = (str(error).splitlines() or [""])[0][:300]
        raise DataError(f"{path} is not a readable {TABLE_READERS[path.suffix]} file: {reason}") from None


def read_saved_dataset(folder: Path) -> dict[str, tuple[pd.DataFrame, str, list[str] | None]]:
    """The splits of a DatasetDict saved with `save_to_disk`: {split: (table, where, ClassLabel names)}."""
    datasets = optional_package("datasets", f"reading the saved DatasetDict in {folder}")
    dataset_dict = datasets.load_from_disk(str(folder))
    splits = {}
    for split, names in SPLIT_FILE_NAMES.items():
        present = [name for name in names if name in dataset_dict]
        if len(present) != 1:
            raise DataError(f"the DatasetDict in {folder} needs exactly one {' or '.join(names)} split; "
                            f"it has {sorted(dataset_dict)}")
        dataset = dataset_dict[present[0]]
        feature = dataset.features.get(column_names(folder)[1])
        class_names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
        splits[split] = dataset.to_pandas(), f"{folder}, split {present[0]}", class_names
    return splits


def label_names_of(column: pd.Series) -> list[str]:
    """Label names found in a training split: whole numbers in numeric order, other names sorted."""
    values = sorted({str(value) for value in column})
    if all(LABEL_ID.fullmatch(value) for value in values):
        return sorted(values, key=int)
    return values


def table_split(table: pd.DataFrame, where: str, columns: tuple[str, str], label_names: list[str],
                class_label: bool) -> pd.DataFrame:
    """One split as (text, label id); every error names the file (or split) and the row."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise DataError(f"{where} has no column {missing[0]!r} (its columns: {list(table.columns)}); "
                        f"name the text and label columns in {TASK_JSON}, e.g. "
                        f'{{"text": "tweet", "label": "emotion"}}')
    if table.empty:
        raise DataError(f"{where} is empty: every split needs at least one example")
    text_column, label_column = columns
    ids = {name: index for index, name in enumerate(label_names)}
    texts, labels = [], []
    for row, (text, label) in enumerate(zip(table[text_column], table[label_column]), start=1):
        if not isinstance(text, str):
            raise DataError(f"{where}, row {row}: the text {text!r} is not a string")
        number = int(label) if class_label and label is not None else None
        if class_label and number is not None and 0 <= number < len(label_names):
            labels.append(number)
        elif not class_label and str(label) in ids:
            labels.append(ids[str(label)])
        else:
            known = "the ClassLabel's ids" if class_label else "the training split's labels"
            raise DataError(f"{where}, row {row}: label {label!r} is not one of {known} ({label_names})")
        texts.append(text)
    return pd.DataFrame({"text": texts, "label": labels})


def read_table_folder(folder: Path, name: str) -> Task:
    """A task from a saved DatasetDict or from train/dev/test files (CSV, JSON Lines or Parquet).

    Label names come from the label column's ClassLabel feature when it has one, else from the
    training split's values; a dev or test label that training never shows is refused.
    """
    columns = column_names(folder)
    if (folder / SAVED_DATASET).exists():
        tables = read_saved_dataset(folder)
    else:
        tables = {split: (read_table(path), str(path), None)
                  for split, path in ((split, split_file(folder, split)) for split in SPLITS)}
    train, train_where, class_names = tables["train"]
    if columns[1] in train.columns and not train.empty and class_names is None:
        label_names = label_names_of(train[columns[1]])
    else:
        label_names = class_names or []
    splits = {split: table_split(table, where, columns, label_names, class_names is not None)
              for split, (table, where, _) in tables.items()}
    return checked(Task(name, label_names, splits, source=str(folder)))
