import json
import shutil

import pytest
from transformers import AutoTokenizer

from mtl_tutorial import data
from mtl_tutorial.batching import BatchStream, EncodedSplit, encode, pad_batch, shuffled_batches
from mtl_tutorial.data import DataError, load_task, load_tasks, write_tsv_folder
from mtl_tutorial.model import packaged_encoder_path

from conftest import write_lines


def test_tweeteval_emotion_from_a_directory(tweeteval_dir):
    task = load_task("emotion", data_dir=tweeteval_dir)
    assert task.label_names == ["anger", "joy", "optimism", "sadness"]
    assert task.sizes() == {"train": 3257, "dev": 374, "test": 1421}
    assert task.splits["train"]["label"].value_counts().sort_index().tolist() == [1400, 708, 294, 855]


def test_sentiment_hate_and_stance_keep_every_line(tweeteval_dir):
    sentiment = load_task("sentiment", data_dir=tweeteval_dir)
    assert sentiment.sizes() == {"train": 45615, "dev": 2000, "test": 12284}
    hate = load_task("hate", data_dir=tweeteval_dir)  # has blank tweets: they must stay aligned with labels
    assert hate.sizes() == {"train": 9000, "dev": 1000, "test": 2970}
    assert (hate.splits["train"]["text"].str.strip() == "").sum() == 7
    stance = load_task("stance_climate", data_dir=tweeteval_dir)
    assert stance.label_names == ["none", "against", "favor"] and stance.sizes()["train"] == 355


def test_download_over_file_url_matches_the_directory(tweeteval_dir, tmp_path):
    cache = tmp_path / "cache"
    downloaded = load_task("irony", cache_dir=cache, base_url=tweeteval_dir.as_uri())
    direct = load_task("irony", data_dir=tweeteval_dir)
    assert downloaded.label_names == direct.label_names == ["non_irony", "irony"]
    for split in data.SPLITS:
        assert downloaded.splits[split].equals(direct.splits[split])
    assert (cache / "tweeteval" / "irony" / "train_text.txt").exists()
    assert not list(cache.rglob("*.partial"))


def test_checksum_mismatch_is_rejected_and_nothing_is_left(tweeteval_dir, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(tweeteval_dir / "emotion", mirror / "emotion")
    with open(mirror / "emotion" / "val_text.txt", "a", encoding="utf-8") as handle:
        handle.write("a tweet someone slipped in\n")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"checksum mismatch for .*emotion/val_text.txt"):
        load_task("emotion", cache_dir=cache, base_url=mirror.as_uri())
    folder = cache / "tweeteval" / "emotion"
    assert not (folder / "val_text.txt").exists()
    assert not [p for p in folder.iterdir() if p.name.endswith(".partial")]


def test_broken_download_leaves_nothing(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="could not download .*emotion"):
        load_task("emotion", cache_dir=cache, base_url=(tmp_path / "nowhere").as_uri())
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_course_format_round_trip(tweeteval_dir, tmp_path):
    emotion = load_task("emotion", data_dir=tweeteval_dir)
    folder = write_tsv_folder(emotion, tmp_path / "emotion")
    assert sorted(p.name for p in folder.iterdir()) == ["dev.tsv", "label2ind.json", "test.tsv", "train.tsv"]
    label2ind = json.loads((folder / "label2ind.json").read_text())
    assert label2ind == {"anger": 0, "joy": 1, "optimism": 2, "sadness": 3}
    again = load_task(folder)
    assert again.name == "emotion" and again.label_names == emotion.label_names
    for split in data.SPLITS:
        assert again.splits[split].equals(emotion.splits[split])
    with pytest.raises(DataError, match="already exists"):
        write_tsv_folder(emotion, folder)


def course_folder(tmp_path, train="content\tlabel\nI love it\tjoy\nso angry\tanger\n", labels=None,
                  name="mytask"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "label2ind.json").write_text(json.dumps(labels or {"anger": 0, "joy": 1}))
    for split in ("train", "dev", "test"):
        (folder / f"{split}.tsv").write_text(train, encoding="utf-8")
    return folder


def test_course_format_accepts_bom_crlf_quotes_and_na(tmp_path):
    text = '\ufeffcontent\tlabel\r\n"quoted" tweet\tjoy\r\nNA\tanger\r\n\tjoy\r\n'
    task = load_task(course_folder(tmp_path, text))
    assert task.splits["train"]["text"].tolist() == ['"quoted" tweet', "NA", ""]
    assert task.splits["train"]["label"].tolist() == [1, 0, 1]


@pytest.mark.parametrize("content, message", [
    ("text\tlabel\nhello\tjoy\n", r"lacks the column\(s\) \['content'\]"),
    ("content\tlabel\nhello\tjoy\nbye\tsurprise\n",
     r"train.tsv, line 3: label 'surprise' is not in label2ind.json"),
    ("content\tlabel\nhello\tthere\tjoy\n",
     r"train.tsv, line 2: 3 tab-separated fields where the header has 2"),
    ("content\tlabel\n", r"the train split .* is empty"),
    ("content\tlabel\nhello\tjoy\nbye\tjoy\n", "fewer than two classes"),
])
def test_course_format_errors_name_the_problem(tmp_path, content, message):
    with pytest.raises(DataError, match=message):
        load_task(course_folder(tmp_path, content))


def tweeteval_folder(tmp_path, labels=("0", "1"), texts=("good", "bad"), mapping="0\tno\n1\tyes"):
    folder = tmp_path / "tiny"
    (folder).mkdir()
    (folder / "mapping.txt").write_text(mapping)
    for split in ("train", "val", "test"):
        write_lines(folder / f"{split}_text.txt", list(texts))
        write_lines(folder / f"{split}_labels.txt", list(labels))
    return folder


def test_tweeteval_format_errors_name_file_and_line(tmp_path):
    with pytest.raises(DataError, match=r"train_labels.txt, line 2: label '7' is not an id in 0..1"):
        load_task(tweeteval_folder(tmp_path, labels=("0", "7")))
    shutil.rmtree(tmp_path / "tiny")
    with pytest.raises(DataError, match=r"train_text.txt has 3 lines but .*train_labels.txt has 2"):
        load_task(tweeteval_folder(tmp_path, texts=("a", "b", "c")))
    shutil.rmtree(tmp_path / "tiny")
    with pytest.raises(DataError, match=r"mapping.txt, line 2: expected 'id<TAB>name'"):
        load_task(tweeteval_folder(tmp_path, mapping="0\tno\n1 yes"))


def test_unknown_and_duplicate_task_names(tweeteval_dir, tmp_path):
    with pytest.raises(DataError, match="unknown task 'emotions'"):
        load_task("emotions", data_dir=tweeteval_dir)
    with pytest.raises(DataError, match="task 'emotion' is named twice"):
        load_tasks(["emotion", "emotion"], data_dir=tweeteval_dir)
    with pytest.raises(DataError, match="neither label2ind.json"):
        load_task(tmp_path)


def test_capped_training_set_is_a_seeded_sample(tweeteval_dir):
    task = load_task("emotion", data_dir=tweeteval_dir)
    small = task.capped(100, seed=1)
    assert small.sizes() == {"train": 100, "dev": 374, "test": 1421}
    assert small.splits["train"].equals(task.capped(100, seed=1).splits["train"])
    assert not small.splits["train"].equals(task.capped(100, seed=2).splits["train"])
    assert task.capped(None, 50).sizes() == {"train": 3257, "dev": 50, "test": 50}
    with pytest.raises(DataError, match="at least 1, got 0"):
        task.capped(0)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(packaged_encoder_path())


def test_encode_truncates_once_and_pads_per_batch(tokenizer, tweeteval_dir):
    frame = load_task("emotion", data_dir=tweeteval_dir).splits["dev"]
    split = encode(tokenizer, frame, max_length=16)
    assert len(split) == 374 and max(split.lengths()) == 16
    batch = pad_batch(split.input_ids[:3], tokenizer.pad_token_id, split.labels[:3])
    width = max(split.lengths()[:3])
    assert batch["input_ids"].shape == (3, width)
    assert batch["attention_mask"].sum(1).tolist() == split.lengths()[:3]
    assert batch["labels"].tolist() == frame["label"].tolist()[:3]


def test_length_grouping_keeps_every_example_and_cuts_padding():
    lengths = [(i * 37) % 60 + 1 for i in range(3000)]
    plain = shuffled_batches(lengths, 32, seed=0, group_by_length=False)
    grouped = shuffled_batches(lengths, 32, seed=0, group_by_length=True)
    assert sorted(i for b in grouped for i in b) == list(range(3000))

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert padded(grouped) < 0.6 * padded(plain)


def test_batch_stream_reshuffles_every_pass_and_resumes():
    split = EncodedSplit([[1] * (1 + i % 5) for i in range(10)], list(range(10)))
    stream = BatchStream(split, batch_size=4, seed=5, group_by_length=False)
    passes = [[label for _ in range(3) for label in next(stream)["labels"].tolist()] for _ in range(3)]
    assert all(sorted(p) == list(range(10)) for p in passes)  # each pass sees every example once
    assert passes[0] != passes[1] != passes[2]  # ... in a new order (itertools.cycle would repeat)
    resumed = BatchStream(split, batch_size=4, seed=5, group_by_length=False)
    resumed.load_state_dict({"passes": 2, "position": 1})
    assert resumed.__next__()["labels"].tolist() == passes[2][4:8]


def test_processes_share_out_each_batch():
    split = EncodedSplit([[1, 2]] * 12, list(range(12)))
    streams = [BatchStream(split, 3, seed=1, rank=rank, world_size=2) for rank in (0, 1)]
    seen = [label for _ in range(2) for s in streams for label in next(s)["labels"].tolist()]
    assert sorted(seen) == list(range(12))


def test_converting_irony_turns_its_tabs_into_spaces(tweeteval_dir, tmp_path):
    irony = load_task("irony", data_dir=tweeteval_dir)
    with pytest.warns(UserWarning, match=r"'irony', train: a tab or newline in 3 tweet\(s\) became a space"):
        folder = write_tsv_folder(irony, tmp_path / "irony")
    again = load_task(folder).splits["train"]
    assert again["text"].tolist() == irony.splits["train"]["text"].str.replace("\t", " ").tolist()
