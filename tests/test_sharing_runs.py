"""Whole runs with every sharing: fit, resume, best checkpoints, evaluate, predict, export, the command
line; on a tiny random BERT and real tweets."""

import dataclasses
import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import BertModel, pipeline

from mtl_tutorial import train
from mtl_tutorial.cli import main
from mtl_tutorial.config import SHARINGS, TrainConfig
from mtl_tutorial.evaluate import evaluate_run, predict, predict_run
from mtl_tutorial.export import export_run
from mtl_tutorial.runs import TRAINED_WEIGHTS_FILE, best_folder, best_models, last_folder
from mtl_tutorial.train import fit

CLOCK = ["seconds", "examples_per_second", "tokens_per_second"]
TWEETS = ["i can't believe it's snowing again", "best day ever!!", "so tired of this", "a"]


def settings(encoder_dir, data_dir, sharing: str) -> TrainConfig:
    return TrainConfig(tasks=["emotion", "sentiment"], model=str(encoder_dir), sharing=sharing, epochs=2,
                       batch_size=16, learning_rate=1e-3, max_train_examples=48, max_eval_examples=32,
                       max_length=32, data_dir=str(data_dir))


def command_line(config: TrainConfig, folder) -> list[str]:
    return ["train", "--tasks", *config.tasks, "--model", config.model, "--sharing", config.sharing,
            "--epochs", str(config.epochs), "--batch-size", str(config.batch_size),
            "--learning-rate", str(config.learning_rate), "--max-length", str(config.max_length),
            "--max-train-examples", str(config.max_train_examples),
            "--max-eval-examples", str(config.max_eval_examples),
            "--data-dir", config.data_dir, "--out", str(folder)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_encoder_dir, small_tweeteval_dir):
    """One finished run per sharing: hard through `fit`, lora and soft through `mtl-tutorial train`; with
    the model each trained, as `fit` held it at the end: {sharing: (config, folder, model, tokenizer)}."""
    made, built, build = {}, [], train.build_shared_model

    def build_and_keep(*args, **kwargs):
        built.append(build(*args, **kwargs))
        return built[-1]

    for sharing in SHARINGS:
        config = settings(tiny_encoder_dir, small_tweeteval_dir, sharing)
        folder = tmp_path_factory.mktemp(sharing)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(train, "build_shared_model", build_and_keep)
            if sharing == "hard":
                fit(config, folder / "run", progress=False)
            else:
                assert main(command_line(config, folder / "run")) == 0
        made[sharing] = (config, folder / "run", *built[-1])
    return made


def crash_after_first_epoch(history):
    if history["epoch"].max() == 1:
        raise KeyboardInterrupt


@pytest.mark.parametrize("sharing", ["lora", "soft"])
def test_a_run_stopped_after_epoch_1_and_resumed_is_the_uninterrupted_run(sharing, runs, tmp_path):
    config, folder, _, _ = runs[sharing]
    with pytest.raises(KeyboardInterrupt):
        fit(config, tmp_path / "resumed", progress=False, on_epoch_end=crash_after_first_epoch)
    resumed = fit(config, tmp_path / "resumed", resume=True, progress=False)
    whole = pd.read_json(folder / "history.json")
    pd.testing.assert_frame_equal(resumed.history.drop(columns=CLOCK), whole.drop(columns=CLOCK))
    assert resumed.results == json.loads((folder / "results.json").read_text())
    assert "gradient_cosine" not in whole  # the probe measures a shared encoder: none here


def test_lora_training_leaves_the_encoders_own_weights_byte_identical(runs, tiny_encoder_dir):
    _, folder, model, _ = runs["lora"]
    pretrained = BertModel.from_pretrained(tiny_encoder_dir).state_dict()
    base = {name.replace("base_model.model.", "").replace(".base_layer", ""): value
            for name, value in model.encoder.state_dict().items() if ".lora_" not in name}
    assert base.keys() == pretrained.keys()
    assert all(torch.equal(value, pretrained[name]) for name, value in base.items())
    weights = model.encoder.state_dict()
    adapters = [{name: value for name, value in weights.items() if f"lora_B.{task}." in name}
                for task in ("emotion", "sentiment")]
    assert all(value.abs().sum() > 0 for value in adapters[0].values())  # B starts at zero: it was trained
    assert all(not torch.equal(value, adapters[1][name.replace("emotion", "sentiment")])
               for name, value in adapters[0].items())
    kept = load_file(last_folder(folder) / TRAINED_WEIGHTS_FILE)  # last/: only what training changes
    assert kept and all(".lora_" in name or name.startswith("heads.") for name in kept)


def folder_size(folder) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def test_a_lora_tasks_best_checkpoint_is_its_adapter_and_head_a_small_fraction_of_a_hard_one(runs):
    sizes = {sharing: folder_size(best_folder(runs[sharing][1], "emotion")) for sharing in SHARINGS}
    print("best/emotion/ bytes:", sizes)
    stored = load_file(best_folder(runs["lora"][1], "emotion") / "task.safetensors")
    assert all(name.startswith(("adapter.", "head.")) for name in stored)
    assert all(".sentiment." not in name for name in stored)
    assert sizes["lora"] < 0.01 * sizes["hard"]
    encoder = sum(p.numel() for p in runs["soft"][2].encoders["emotion"].parameters())
    assert sizes["soft"] > 4 * encoder  # soft: the task's own encoder copy (float32), not all of them
    assert sizes["soft"] < 4 * 2 * encoder


@pytest.mark.parametrize("sharing", ["lora", "soft"])
def test_evaluate_and_predict_after_reloading_give_what_the_model_in_memory_gives(sharing, runs):
    _, folder, model, tokenizer = runs[sharing]
    results = json.loads((folder / "results.json").read_text())
    again = evaluate_run(folder, "test").set_index("task")
    for task, result in results.items():  # test_best_checkpoints scored the in-memory model
        assert again.loc[task, "official"] == result["test"]["official"]
        assert again.loc[task, "loss"] == pytest.approx(result["test"]["loss"], rel=1e-6)
    # after fit, the model in memory holds every task's best part (test_best_checkpoints put each in)
    pd.testing.assert_frame_equal(predict_run(folder, TWEETS, max_length=32),
                                  predict(model, tokenizer, TWEETS, max_length=32))
    reloaded = best_models(folder)
    assert reloaded["emotion"][0] is reloaded["sentiment"][0]  # one model holds every task's best


def test_a_lora_model_labels_every_task_in_one_forward_pass_as_calls_per_task_do(runs):
    _, folder, _, _ = runs["lora"]
    model, tokenizer = best_models(folder)["emotion"]
    passes = []
    hook = model.encoder.register_forward_hook(lambda *_: passes.append(1))
    together = predict(model, tokenizer, TWEETS)
    assert len(passes) == 1
    alone = pd.concat([predict(model, tokenizer, TWEETS, task) for task in model.tasks], ignore_index=True)
    hook.remove()
    assert len(passes) == 3
    assert together[["text", "task", "label"]].equals(alone[["text", "task", "label"]])
    pd.testing.assert_frame_equal(together, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sharing", ["lora", "soft"])
def test_an_exported_task_labels_tweets_as_predict_run_does(sharing, runs, tmp_path):
    _, folder, _, _ = runs[sharing]
    for task, exported in export_run(folder, tmp_path / "exported").items():
        assert not (exported / "adapter_config.json").exists()  # LoRA merged: a plain encoder
        expected = predict_run(folder, TWEETS, task)
        classify = pipeline("text-classification", model=str(exported), top_k=None, trust_remote_code=True)
        names = list(classify.model.config.id2label.values())
        for (_, row), answer in zip(expected.iterrows(), classify(TWEETS)):
            scores = {item["label"]: item["score"] for item in answer}
            assert answer[0]["label"] == row["label"]
            assert max(abs(scores[name] - row[name]) for name in names) < 1e-5


def test_a_gradient_aggregator_with_lora_is_refused_by_the_command_line_in_one_line(tmp_path, capsys):
    code = main(["train", "--sharing", "lora", "--strategy", "all-tasks", "--combine", "pcgrad",
                 "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert "combine='pcgrad' needs sharing='hard'" in error and "sharing='lora'" in error
    assert not (tmp_path / "run").exists()


def test_the_training_panel_offers_every_sharing(tmp_path):
    from mtl_tutorial.widgets import training_panel

    panel = training_panel(TrainConfig(), tmp_path / "run")
    assert tuple(panel.sharing.options) == SHARINGS and panel.sharing.value == "hard"
    panel.sharing.value = "lora"
    assert panel.config().sharing == "lora" and panel.config().lora_rank == TrainConfig().lora_rank


@pytest.mark.parametrize("sharing, strategy, combine", [
    ("soft", "all-tasks", "equal"), ("soft", "sample", None), ("lora", "all-tasks", "uncertainty")])
def test_the_penalty_joins_the_loss_once_per_step(sharing, strategy, combine, tiny_encoder_dir,
                                                 small_tweeteval_dir, tmp_path, monkeypatch):
    config = dataclasses.replace(settings(tiny_encoder_dir, small_tweeteval_dir, sharing), epochs=1,
                                 strategy=strategy, combine=combine)
    asked, build = [], train.build_shared_model

    def build_and_count(*args, **kwargs):
        model, tokenizer = build(*args, **kwargs)
        penalty = model.penalty
        model.penalty = lambda: asked.append(1) or penalty()
        return model, tokenizer

    monkeypatch.setattr(train, "build_shared_model", build_and_count)
    history = fit(config, tmp_path / "run", progress=False).history
    steps = 3 if strategy == "all-tasks" else 6  # 48 tweets per task in batches of 16
    assert len(asked) == steps
    assert ("weight" in history) == (strategy == "all-tasks") and (history["train_loss"] > 0).all()
