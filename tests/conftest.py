"""Shared fixtures: the offline TweetEval copy in ../shared, a tiny random BERT for fast tests, and one tiny
run trained once per session for every test that only reads a run; a small table of lesson 8's experiment;
one runs folder for the session's lessons, so that each lesson's runs are trained once; and, under
pytest-xdist (`-n 2 --dist loadgroup`, the README's test command), which tests must share a worker."""

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from mtl_tutorial.config import TrainConfig
from mtl_tutorial.exercises.fixtures import tiny_encoder, tokenizer
from mtl_tutorial.experiments import sharing_experiment
from mtl_tutorial.lessons import RUNS_VARIABLE, lesson
from mtl_tutorial.runs import TrainingRun
from mtl_tutorial.train import fit

REPO = Path(__file__).resolve().parents[1]
TWEETEVAL = Path(os.environ.get("MTL_TUTORIAL_TEST_DATA", REPO.parent / "shared" / "data" / "tweeteval"))


def pytest_configure(config):
    """The lessons' runs folder for this session: tests/test_course.py's student copies train each lesson's
    runs there at the CI scale, and nbval's lessons (the same lessons, run after the tests) read them back
    instead of training them again. A folder of its own: a user's $MTL_TUTORIAL_RUNS is never touched."""
    config.lesson_runs = Path(tempfile.mkdtemp(prefix="mtl-tutorial-lesson-runs-"))
    config.pluginmanager.register(NbvalLessonsShareTheRuns(config.lesson_runs), "lesson-runs")
    if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # a worker of `-n N`: the cores shared out
        from threadpoolctl import threadpool_limits  # scikit-learn's

        threads = max(1, os.cpu_count() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
        os.environ["OMP_NUM_THREADS"] = str(threads)  # and in the kernels and the scripts the tests start
        torch.set_num_threads(threads)
        # numpy's OpenBLAS, loaded already with a thread per core: two workers' threads spinning on two cores
        # made the exercise checks' word model (scikit-learn) take 10 s instead of half a second
        threadpool_limits(threads)


def chain_of(stem: str) -> str:
    """The first lesson of the chain that lesson `stem` belongs to (through `reads_run_of`): lesson 5 reads
    lesson 4's run and 4 reads 0's, so 00_overview for all three; every other lesson is a chain of its own."""
    while (earlier := lesson(stem).reads_run_of) is not None:
        stem = earlier
    return stem


@pytest.hookimpl(wrapper=True)  # around the other hooks: xdist reads the groups into the ids it sends out
def pytest_collection_modifyitems(config, items):
    """Which tests must share a pytest-xdist worker (`--dist loadgroup`): a lesson's chain (the student copies
    that train its runs, the tests that read them, nbval's cells of its lessons: in that order, the order of
    collection); each module whose tests share a module fixture; every other test is free."""
    for item in items:
        marker = item.get_closest_marker("lesson")
        stem = item.path.stem if item.path.suffix == ".ipynb" else marker and marker.args[0]
        if "lesson_runs" in getattr(item, "fixturenames", ()) and not stem:
            raise pytest.UsageError(f"{item.nodeid} uses the lessons' runs: mark it pytest.mark.lesson(STEM)")
        if not config.pluginmanager.hasplugin("xdist"):
            continue
        if stem:
            item.add_marker(pytest.mark.xdist_group(f"lesson-{chain_of(stem)}"))
        elif hasattr(item, "_fixtureinfo") and any(definition.scope in ("module", "class") for definitions in
                 item._fixtureinfo.name2fixturedefs.values() for definition in definitions):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    yield
    # Stop at once if xdist lost the groups (pytest 9.2 keeps the ids where xdist 3.8 does not write them):
    # a lesson's cells spread over both workers would fail one by one, each in a fresh kernel
    lost = [item.nodeid for item in items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if getattr(config.option, "loadgroup", False) and lost:  # set in the workers of `--dist loadgroup`
        raise pytest.UsageError(f"pytest-xdist did not group {lost[0]} (and {len(lost) - 1} more): "
                                "pyproject.toml's dev extra pins the pytest that it works with")


def pytest_unconfigure(config):
    shutil.rmtree(config.lesson_runs, ignore_errors=True)


class NbvalLessonsShareTheRuns:
    """While nbval starts a lesson's kernel (in the setup of its first cell), point it at the runs folder; the
    tests that a worker runs after a lesson see the environment as it was (the browser's lessons, say)."""

    def __init__(self, folder: Path):
        self.folder = folder

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item):
        if item.path.suffix != ".ipynb":
            return (yield)
        with pytest.MonkeyPatch.context() as environment:
            environment.setenv(RUNS_VARIABLE, str(self.folder))
            return (yield)


@pytest.fixture(scope="session")
def lesson_runs(request) -> Path:
    return request.config.lesson_runs


@pytest.fixture(scope="session")
def tweeteval_dir() -> Path:
    assert (TWEETEVAL / "emotion" / "train_text.txt").exists(), (
        f"the offline TweetEval copy is missing at {TWEETEVAL}; set MTL_TUTORIAL_TEST_DATA"
    )
    return TWEETEVAL


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT with the packaged MiniLM's tokenizer, saved as a model folder."""
    # exercises.tiny_encoder with dropout; seed 2: in test_hardening's run both tasks improve after epoch 1
    return save_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"), seed=2, dropout=0.1)


def save_tiny_encoder(folder: Path, seed: int, dropout: float) -> Path:
    """Save `exercises.tiny_encoder(seed, dropout)` with the packaged MiniLM's tokenizer as a model folder."""
    tiny_encoder(seed, dropout).save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_encoder_dir, tweeteval_dir) -> TrainingRun:
    """A finished run of the tiny BERT on real tweets: emotion + irony, 64 training and 50 dev/test tweets
    each, 2 epochs. Trained once for the whole session: a test that changes it works on a copy."""
    config = TrainConfig(tasks=["emotion", "irony"], model=str(tiny_encoder_dir), epochs=2,
                         max_train_examples=64, max_eval_examples=50, max_length=32, learning_rate=1e-3,
                         data_dir=str(tweeteval_dir))
    return fit(config, tmp_path_factory.mktemp("shared") / "tiny-run", progress=False)


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


@pytest.fixture(autouse=True)
def no_data_dir_from_the_environment(monkeypatch):
    """CI sets MTL_TUTORIAL_DATA_DIR for the notebooks; tests name their data explicitly instead."""
    monkeypatch.delenv("MTL_TUTORIAL_DATA_DIR", raising=False)
    monkeypatch.delenv(RUNS_VARIABLE, raising=False)


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random RoBERTa with its own byte-level BPE tokenizer (trained here on real tweets):
    the full recipe's encoder type (no token types, pad id 1, a pooler), with no download."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-roberta")
    tweets = []
    for task in ("emotion", "sentiment"):
        tweets += (TWEETEVAL / task / "train_text.txt").read_text(encoding="utf-8").splitlines()[:2000]
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(tweets, vocab_size=1000, special_tokens=special, show_progress=False)
    bpe.save_model(str(folder))
    tokenizer = RobertaTokenizerFast.from_pretrained(folder)  # reads vocab.json + merges.txt in 4.x and 5.x
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=130,
                           pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def small_tweeteval_dir(tmp_path_factory) -> Path:
    """A TweetEval datasets/ folder with the first tweets of emotion and sentiment.

    Real data, few enough tweets that uncapped runs are fast."""
    folder = tmp_path_factory.mktemp("small-tweeteval")
    for task in ("emotion", "sentiment"):
        (folder / task).mkdir()
        (folder / task / "mapping.txt").write_bytes((TWEETEVAL / task / "mapping.txt").read_bytes())
        for split, size in (("train", 240), ("val", 80), ("test", 80)):
            for kind in ("text", "labels"):
                name = f"{split}_{kind}.txt"
                lines = (TWEETEVAL / task / name).read_text(encoding="utf-8").splitlines(True)
                (folder / task / name).write_text("".join(lines[:size]), encoding="utf-8")
    return folder


@pytest.fixture
def sharing_table(tmp_path):
    """A table shaped like lesson 8's recorded/sharing.csv, written and read back: single-task per task, hard
    on two seeds, LoRA on one, and an arm of another lesson."""
    runs = [("single-task emotion", 77, ["emotion"], 60, 1500, 87.0),
            ("single-task sentiment", 77, ["sentiment"], 400, 1500, 87.0),
            ("multi-task uniform", 77, ["emotion", "sentiment"], 500, 1800, 87.2),
            ("multi-task uniform", 78, ["emotion", "sentiment"], 510, 1790, 87.2),
            ("multi-task uniform lora", 77, ["emotion", "sentiment"], 350, 1200, 0.85),
            ("multi-task uniform + irony", 77, ["emotion", "sentiment", "irony"], 700, 1830, 89.0)]
    rows = [{"arm": arm, "seed": seed, "task": task, "test": 60 + index + seed % 2 / 2, "dev": 50 + index,
             "best epoch": 2, "training minutes": 3 * seconds / 60, "seconds per epoch": seconds,
             "peak MiB": peak, "checkpoint MiB": size}
            for index, (arm, seed, tasks, seconds, peak, size) in enumerate(runs) for task in tasks]
    pd.DataFrame(rows).to_csv(tmp_path / "sharing.csv", index=False)
    return sharing_experiment(tmp_path / "sharing.csv")
