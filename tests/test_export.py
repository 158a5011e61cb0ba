"""Exporting a run: each task's best checkpoint as a standard Hugging Face classifier that `pipeline` loads,
labelling tweets exactly as the package's own `predict` does, offline."""

import pytest
from huggingface_hub import ModelCard
from transformers import AutoModelForSequenceClassification, pipeline

from mtl_tutorial.cli import main
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.evaluate import predict_run
from mtl_tutorial.export import export_run
from mtl_tutorial.runs import open_run
from mtl_tutorial.train import fit

NATIVE = {("bert", "cls"): "BertForSequenceClassification",
          ("roberta", "cls"): "RobertaForSequenceClassification"}


@pytest.fixture(scope="module")
def real_tweets(small_tweeteval_dir):
    lines = (small_tweeteval_dir / "emotion" / "test_text.txt").read_text(encoding="utf-8").splitlines()
    return lines[:4] + ["a"]  # and one much shorter than the others, so that the batch is padded


def train_tiny_run(folder, encoder_dir, pooling, data_dir):
    config = TrainConfig(tasks=["emotion", "sentiment"], model=str(encoder_dir), pooling=pooling, epochs=1,
                         batch_size=16, learning_rate=1e-3, max_train_examples=48, max_eval_examples=32,
                         max_length=32, gradient_probe_batches=0, data_dir=str(data_dir))
    fit(config, folder)
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_encoder_dir, tiny_roberta_dir, small_tweeteval_dir):
    """exported(family, pooling): a tiny run of that encoder family and pooling (trained once), exported."""
    made = {}

    def export(family, pooling):
        if (family, pooling) not in made:
            folder = tmp_path_factory.mktemp(f"export-{family}-{pooling}")
            encoder_dir = tiny_encoder_dir if family == "bert" else tiny_roberta_dir
            run = train_tiny_run(folder / "run", encoder_dir, pooling, small_tweeteval_dir)
            made[family, pooling] = run, export_run(run, folder / "exported")
        return made[family, pooling]
    return export


EVERY_CASE = [(family, pooling) for family in ("bert", "roberta") for pooling in ("mean", "cls", "pooler")]


@pytest.mark.parametrize("family, pooling", EVERY_CASE)
def test_pipeline_labels_tweets_as_predict_does(exported, real_tweets, family, pooling):
    run, folders = exported(family, pooling)
    assert sorted(folders) == ["emotion", "sentiment"]
    native = (family, pooling) in NATIVE
    for task, folder in folders.items():
        expected = predict_run(run, real_tweets, task)
        classify = pipeline("text-classification", model=str(folder), top_k=None,
                            trust_remote_code=not native)
        if native:
            assert type(classify.model).__name__ == NATIVE[family, pooling]
            assert not (folder / "modeling_mtl_tutorial.py").exists()
        else:
            assert type(classify.model).__name__ == "PooledEncoderForSequenceClassification"
        answers = classify(real_tweets)
        label_names = list(classify.model.config.id2label.values())
        assert label_names == [name for name in expected.columns if name not in ("text", "task", "label")]
        for (_, row), answer in zip(expected.iterrows(), answers):
            scores = {item["label"]: item["score"] for item in answer}
            assert answer[0]["label"] == row["label"]
            assert max(abs(scores[name] - row[name]) for name in label_names) < 1e-5
            assert max(scores.values()) - min(scores.values()) > 1e-3  # the heads say something


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_first_token_pooling_is_the_family_s_own_classifier(exported, family):
    _, folders = exported(family, "cls")
    model = AutoModelForSequenceClassification.from_pretrained(folders["emotion"])
    assert type(model).__name__ == NATIVE[family, "cls"]
    assert model.config.id2label == {0: "anger", 1: "joy", 2: "optimism", 3: "sadness"}


@pytest.mark.parametrize("family, pooling", [("bert", "mean"), ("roberta", "pooler")])
def test_a_custom_pooling_loads_only_with_trust_remote_code(exported, family, pooling):
    _, folders = exported(family, pooling)
    with pytest.raises(ValueError, match="custom code"):
        AutoModelForSequenceClassification.from_pretrained(folders["emotion"], trust_remote_code=False)
    model = AutoModelForSequenceClassification.from_pretrained(folders["emotion"], trust_remote_code=True)
    assert model.config.pooling == pooling
    assert model.config.id2label == {0: "anger", 1: "joy", 2: "optimism", 3: "sadness"}


def test_the_model_card_describes_the_run(exported):
    run, folders = exported("bert", "mean")
    card = ModelCard.load(folders["emotion"] / "README.md")
    results = open_run(run).results["emotion"]
    assert card.data.datasets == ["cardiffnlp/tweet_eval"]
    assert card.data.pipeline_tag == "text-classification"
    assert card.data.license == "other" and "tweeteval" in card.data.license_link
    (evaluation,) = card.data.eval_results
    assert (evaluation.dataset_config, evaluation.dataset_split, evaluation.metric_name) == \
        ("emotion", "test", "macro-F1")
    assert evaluation.metric_value == round(results["test"]["official"], 4)
    baseline = results["test_majority_baseline"]["official"]
    test = results["test"]
    assert f"| test | {test['official']:.4f} | {test['accuracy']:.4f} | {baseline:.4f} |" in card.text
    assert "trained together with sentiment" in card.text and "trust_remote_code=True" in card.text
    assert "SemEval-2018 Task 1" in card.text and "@inproceedings{barbieri2020tweeteval" in card.text


def test_export_command_writes_one_folder_per_task_and_refuses_to_overwrite(exported, tmp_path, capsys):
    run, _ = exported("roberta", "cls")
    assert main(["export", str(run), "--out", str(tmp_path / "out"), "--task", "sentiment"]) == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["sentiment"]
    assert "hf upload" in capsys.readouterr().out
    assert main(["export", str(run), "--out", str(tmp_path / "out"), "--task", "sentiment"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(run), "--out", str(tmp_path / "out"), "--task", "irony"]) == 2
    assert "has no task 'irony'" in capsys.readouterr().err
