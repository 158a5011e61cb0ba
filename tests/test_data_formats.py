"""Tasks from the formats people already have: a saved DatasetDict, or CSV / JSON Lines / Parquet files,
read as TweetEval and the course folders are (real tweets, written here by the tests)."""

import json

import pandas as pd
import pytest

from mtl_tutorial.data import DataError, load_task, load_tasks

EMOTIONS = ["anger", "joy", "optimism", "sadness"]


@pytest.fixture(scope="module")
def emotion(small_tweeteval_dir):
    """The first real emotion tweets of each split, with their label names."""
    frames = {}
    for split, name, size in (("train", "train", 60), ("dev", "val", 20), ("test", "test", 20)):
        folder = small_tweeteval_dir / "emotion"
        texts = (folder / f"{name}_text.txt").read_text(encoding="utf-8").splitlines()[:size]
        labels = [int(line) for line in (folder / f"{name}_labels.txt").read_text().splitlines()[:size]]
        frames[split] = pd.DataFrame({"text": texts, "label": [EMOTIONS[label] for label in labels]})
    return frames


def write_files(folder, frames, suffix, split_names=None, columns=("text", "label")):
    folder.mkdir(parents=True)
    for split, frame in frames.items():
        path = folder / f"{(split_names or {}).get(split, split)}{suffix}"
        frame = frame.rename(columns=dict(zip(("text", "label"), columns)))
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        elif suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_parquet(path)
    return folder


def assert_same_task(task, frames, label_names):
    assert task.label_names == label_names
    for split, frame in frames.items():
        assert task.splits[split]["text"].tolist() == frame["text"].tolist()
        assert [label_names[label] for label in task.splits[split]["label"]] == frame["label"].tolist()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_files_in_each_format_load_as_a_task(tmp_path, emotion, suffix):
    folder = write_files(tmp_path / "my_emotion", emotion, suffix)
    task = load_task(folder)
    assert task.name == "my_emotion" and task.sizes() == {"train": 60, "dev": 20, "test": 20}
    assert_same_task(task, emotion, sorted(set(emotion["train"]["label"])))


def test_validation_and_other_column_names_from_task_json(tmp_path, emotion):
    folder = write_files(tmp_path / "tweets", emotion, ".jsonl", {"dev": "validation"}, ("tweet", "feeling"))
    (folder / "task.json").write_text(json.dumps({"text": "tweet", "label": "feeling"}), encoding="utf-8")
    assert_same_task(load_task(folder), emotion, sorted(EMOTIONS))


def test_integer_labels_keep_their_numbers(tmp_path, emotion):
    numbered = {split: frame.assign(label=frame["label"].map(EMOTIONS.index))
                for split, frame in emotion.items()}
    task = load_task(write_files(tmp_path / "numbers", numbered, ".csv"))
    assert task.label_names == ["0", "1", "2", "3"]
    assert task.splits["test"]["label"].tolist() == numbered["test"]["label"].tolist()


def test_a_saved_dataset_dict_uses_its_class_label_names(tmp_path, emotion):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=EMOTIONS)})
    saved = datasets.DatasetDict({
        ("validation" if split == "dev" else split): datasets.Dataset.from_dict(
            {"text": frame["text"].tolist(), "label": [EMOTIONS.index(name) for name in frame["label"]]},
            features=features)
        for split, frame in emotion.items()})
    saved.save_to_disk(str(tmp_path / "emotion_hf"))
    task = load_task(tmp_path / "emotion_hf")
    assert_same_task(task, emotion, EMOTIONS)  # the ClassLabel's order, not sorted
    assert list(load_tasks([tmp_path / "emotion_hf"])) == ["emotion_hf"]


def test_a_label_that_training_never_shows_names_the_file_and_row(tmp_path, emotion):
    frames = {**emotion, "dev": emotion["dev"].copy()}
    frames["dev"].loc[6, "label"] = "surprise"
    folder = write_files(tmp_path / "bad", frames, ".csv")
    with pytest.raises(DataError, match=r"dev\.csv, row 7: label 'surprise' is not one of the training"):
        load_task(folder)


def test_a_missing_column_or_an_empty_split_names_the_file(tmp_path, emotion):
    renamed = emotion["test"].rename(columns={"text": "tweet"})
    folder = write_files(tmp_path / "columns", {**emotion, "test": renamed}, ".jsonl")
    with pytest.raises(DataError, match=r"test\.jsonl has no column 'text' .*task\.json"):
        load_task(folder)
    folder = write_files(tmp_path / "empty", {**emotion, "dev": emotion["dev"].iloc[:0]}, ".parquet")
    with pytest.raises(DataError, match=r"dev\.parquet is empty"):
        load_task(folder)


def test_two_files_for_one_split_are_refused(tmp_path, emotion):
    folder = write_files(tmp_path / "twice", emotion, ".csv")
    emotion["dev"].to_json(folder / "validation.jsonl", orient="records", lines=True)
    with pytest.raises(DataError, match="2 files .*dev.csv, validation.jsonl"):
        load_task(folder)
