"""Shared fixtures: the offline TweetEval copy in ../shared and a tiny random BERT for fast tests."""

import os
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from mtl_tutorial.model import packaged_encoder_path

REPO = Path(__file__).resolve().parents[1]
TWEETEVAL = Path(os.environ.get("MTL_TUTORIAL_TEST_DATA", REPO.parent / "shared" / "data" / "tweeteval"))


@pytest.fixture(scope="session")
def tweeteval_dir() -> Path:
    assert (TWEETEVAL / "emotion" / "train_text.txt").exists(), (
        f"the offline TweetEval copy is missing at {TWEETEVAL}; set MTL_TUTORIAL_TEST_DATA"
    )
    return TWEETEVAL


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT with the packaged MiniLM's tokenizer, saved as a model folder."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(packaged_encoder_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(2)  # the same encoder every session; in test_hardening's run both tasks improve after epoch 1
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


@pytest.fixture(autouse=True)
def no_data_dir_from_the_environment(monkeypatch):
    """CI sets MTL_TUTORIAL_DATA_DIR for the notebooks; tests name their data explicitly instead."""
    monkeypatch.delenv("MTL_TUTORIAL_DATA_DIR", raising=False)
