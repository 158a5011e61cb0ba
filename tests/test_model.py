import pytest
import torch
import torch.nn.functional as F

from mtl_tutorial.evaluate import predict
from mtl_tutorial.model import (ClassificationHead, MultiTaskModel, build_model, encoder_setting,
                                load_encoder, load_model, packaged_encoder_path, resolve_encoder, save_model)

LABELS = {"emotion": ["anger", "joy", "optimism", "sadness"],
          "sentiment": ["negative", "neutral", "positive"]}


def test_head_is_initialised_like_bert():
    torch.manual_seed(0)
    head = ClassificationHead(384, 4)
    assert head.dense.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert head.out.weight.shape == (4, 384)
    assert torch.count_nonzero(head.dense.bias) == 0 and torch.count_nonzero(head.out.bias) == 0


def test_printed_head_shows_its_layers_in_order_tanh_included():
    torch.manual_seed(0)
    head = ClassificationHead(8, 3).eval()
    printed = repr(head)
    layers = ["Linear(in_features=8, out_features=8", "Tanh()", "Dropout(",
              "Linear(in_features=8, out_features=3"]
    positions = [printed.find(layer) for layer in layers]
    assert -1 not in positions and positions == sorted(positions), printed
    features = torch.randn(5, 8)
    assert torch.allclose(head(features), head.out(torch.tanh(head.dense(features))))


@pytest.fixture
def tiny_model(tiny_encoder_dir):
    torch.manual_seed(0)
    return build_model(LABELS, str(tiny_encoder_dir))


def copy_of(module):
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def changed(before, module):
    return any(not torch.equal(before[name], value) for name, value in module.state_dict().items())


def test_a_step_on_one_task_updates_the_encoder_and_its_head_only(tiny_model):
    model, tokenizer = tiny_model
    batch = tokenizer(["what a lovely day", "this is awful"], padding=True, return_tensors="pt")
    encoder = copy_of(model.encoder)
    emotion, sentiment = copy_of(model.heads["emotion"]), copy_of(model.heads["sentiment"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    logits = model(batch["input_ids"], batch["attention_mask"], "emotion")
    loss = F.cross_entropy(logits, torch.tensor([1, 0]))
    loss.backward()
    assert all(p.grad is None for p in model.heads["sentiment"].parameters())
    optimizer.step()
    assert changed(encoder, model.encoder) and changed(emotion, model.heads["emotion"])
    assert not changed(sentiment, model.heads["sentiment"])


@pytest.mark.parametrize("pooling", ["mean", "cls", "pooler"])
def test_each_pooling_gives_one_vector_per_tweet(tiny_encoder_dir, pooling):
    model, tokenizer = build_model(LABELS, str(tiny_encoder_dir), pooling)
    batch = tokenizer(["short", "a somewhat longer tweet here"], padding=True, return_tensors="pt")
    assert model(batch["input_ids"], batch["attention_mask"], "sentiment").shape == (2, 3)


def test_mean_pooling_ignores_padding(tiny_model):
    model, tokenizer = tiny_model
    model.eval()
    alone = tokenizer(["short"], return_tensors="pt")
    padded = tokenizer(["short", "a much much longer tweet than the first"], padding=True,
                       return_tensors="pt")
    one = model(alone["input_ids"], alone["attention_mask"], "emotion")
    two = model(padded["input_ids"], padded["attention_mask"], "emotion")[:1]
    torch.testing.assert_close(one, two, atol=1e-5, rtol=1e-4)


def test_unknown_task_and_pooling_are_named(tiny_model, tiny_encoder_dir):
    model, tokenizer = tiny_model
    batch = tokenizer(["x"], return_tensors="pt")
    with pytest.raises(KeyError, match="no head for task 'irony'"):
        model(batch["input_ids"], batch["attention_mask"], "irony")
    with pytest.raises(ValueError, match="pooling must be one of"):
        MultiTaskModel(model.encoder, LABELS, pooling="max")


def test_parameter_counts_split_shared_from_task_specific(tiny_model):
    model, _ = tiny_model
    counts = model.parameter_counts()
    assert counts["head: emotion"] == 32 * 32 + 32 + 32 * 4 + 4
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters())


def test_save_load_predict_gives_the_same_probabilities(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    texts = ["I am so happy today!", "worst service ever", ""]
    before = predict(model, tokenizer, texts)
    folder = save_model(model, tokenizer, tmp_path / "saved")
    loaded, loaded_tokenizer = load_model(folder)
    after = predict(loaded, loaded_tokenizer, texts)
    assert before[["text", "task", "label"]].equals(after[["text", "task", "label"]])
    probabilities = [name for labels in LABELS.values() for name in labels]
    torch.testing.assert_close(torch.tensor(after[probabilities].fillna(0).values),
                               torch.tensor(before[probabilities].fillna(0).values))
    assert len(after) == 6 and set(after["task"]) == set(LABELS)
    assert predict(loaded, loaded_tokenizer, texts, task="sentiment")["label"].isin(LABELS["sentiment"]).all()


def test_the_packaged_encoder_loads_offline():
    encoder, tokenizer = load_encoder()
    assert encoder.config.hidden_size == 384 and encoder.config.num_hidden_layers == 6
    assert tokenizer.is_fast


def test_the_packaged_encoder_has_one_name_and_any_other_is_loaded_as_given():
    assert encoder_setting(None) is encoder_setting("") is encoder_setting("packaged-minilm") is None
    assert resolve_encoder("packaged-minilm") == resolve_encoder(None) == str(packaged_encoder_path())
    assert encoder_setting("roberta-base") == resolve_encoder("roberta-base") == "roberta-base"


def test_missing_encoder_and_broken_checkpoints_are_named(tiny_model, tmp_path):
    with pytest.raises(OSError, match=f"cannot load encoder '{tmp_path / 'nothing'}'"):
        load_encoder(str(tmp_path / "nothing"))
    model, tokenizer = tiny_model
    folder = save_model(model, tokenizer, tmp_path / "saved")
    weights = folder / "heads.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(OSError, match="truncated or not a saved model"):
        load_model(folder)
    with pytest.raises(OSError, match="mtl_model.json is missing"):
        load_model(tmp_path)
