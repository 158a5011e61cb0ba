"""Any bytes in a task folder give a Task or a DataError naming the file; nothing else, nothing written.

Property-based (hypothesis): arbitrary text, tabs, quotes, CRLF, a BOM, empty and huge lines,
non-UTF-8 bytes.
"""

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtl_tutorial.data import DataError, Task, load_task, read_tweeteval_mapping

PIECES = st.sampled_from(["\t", '"', "'", "\r\n", "\n", "\r", "\ufeff", "", " ", "0", "1", "2", "7", "-1",
                          "²", "١", "joy", "anger", "content", "label", "x" * 5000, "\x00", "é", "😂"])
TEXT = st.lists(st.one_of(PIECES, st.text(max_size=20)), max_size=30).map("".join)
RAW = st.one_of(TEXT.map(lambda text: text.encode("utf-8")), st.binary(max_size=200),
                TEXT.map(lambda text: b"\xef\xbb\xbf" + text.encode("utf-8")),  # BOM
                TEXT.map(lambda text: text.encode("utf-8") + b"\xff\xfe"))  # a non-UTF-8 tail
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def listing(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def load_and_judge(folder: Path, files: dict[str, bytes]) -> None:
    """Write `files`, load the folder: a Task, or a DataError naming one of the files; nothing written."""
    for name, content in files.items():
        (folder / name).write_bytes(content)
    before = listing(folder)
    try:
        task = load_task(folder)
    except DataError as error:
        names_the_folder = str(folder) in str(error)
        named = [name for name in files if name in str(error)] or (["folder"] if names_the_folder else [])
        assert named, f"the error names no file: {error}"
    else:
        assert isinstance(task, Task) and task.num_labels >= 2
        assert all(len(frame) > 0 for frame in task.splits.values())
    assert listing(folder) == before


@SETTINGS
@given(mapping=RAW, texts=RAW, labels=RAW, good_labels=st.booleans())
def test_tweeteval_folders(mapping, texts, labels, good_labels):
    with tempfile.TemporaryDirectory() as place:
        folder = Path(place) / "mine"
        folder.mkdir()
        files = {"mapping.txt": mapping if not good_labels else b"0\tno\n1\tyes\n"}
        for split in ("train", "val", "test"):
            files[f"{split}_text.txt"] = texts
            good = b"0\n1\n" * (texts.count(b"\n") // 2)
            files[f"{split}_labels.txt"] = labels if not good_labels else good
        load_and_judge(folder, files)


@SETTINGS
@given(label2ind=st.one_of(RAW, st.dictionaries(TEXT, st.integers(-2, 4), max_size=4).map(
    lambda mapping: json.dumps(mapping).encode())), rows=RAW, header=st.booleans())
def test_course_tsv_folders(label2ind, rows, header):
    with tempfile.TemporaryDirectory() as place:
        folder = Path(place) / "mine"
        folder.mkdir()
        files = {"label2ind.json": label2ind}
        for split in ("train", "dev", "test"):
            files[f"{split}.tsv"] = (b"content\tlabel\n" if header else b"") + rows
        load_and_judge(folder, files)


@SETTINGS
@given(content=RAW)
def test_mapping_files(content):
    with tempfile.TemporaryDirectory() as place:
        path = Path(place) / "mapping.txt"
        path.write_bytes(content)
        try:
            names = read_tweeteval_mapping(path)
        except DataError as error:
            assert "mapping.txt" in str(error)
        else:
            assert all(isinstance(name, str) for name in names)
