"""How much the tasks share: hard, one LoRA adapter per task, soft; on a tiny random BERT and real tweets."""

import copy
import itertools

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertModel

from mtl_tutorial.cli import build_parser, config_from_arguments
from mtl_tutorial.combine import COMBINERS, aggregates_gradients
from mtl_tutorial.config import SHARINGS, TrainConfig
from mtl_tutorial.data import load_task
from mtl_tutorial.model import MultiTaskModel, load_encoder
from mtl_tutorial.sharing import (BUILDERS, TASK_WEIGHTS_FILE, HardSharing, LoraSharing, load_task_checkpoint,
                                  parameter_table, save_task_checkpoint, soft_penalty)

TASKS = ("emotion", "sentiment")


@pytest.fixture(scope="module")
def tweets(tweeteval_dir, tiny_encoder_dir):
    """Per task, four batches of 8 real training tweets (input_ids, attention_mask, labels); the labels."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    batches, labels = {}, {}
    for name in TASKS:
        task = load_task(name, data_dir=tweeteval_dir)
        frame = task.splits["train"].iloc[:32]
        labels[name] = task.label_names
        batches[name] = []
        for start in range(0, 32, 8):
            rows = frame.iloc[start:start + 8]
            batch = dict(tokenizer(rows["text"].tolist(), padding=True, truncation=True, max_length=40,
                                   return_tensors="pt"))
            batch.pop("token_type_ids", None)
            batches[name].append({**batch, "labels": torch.tensor(rows["label"].tolist())})
    return batches, labels


def tiny_model(tiny_encoder_dir, labels, sharing: str, seed: int = 0, **settings):
    torch.manual_seed(seed)
    config = TrainConfig(sharing=sharing, **settings)
    return BUILDERS[sharing](BertModel.from_pretrained(tiny_encoder_dir), labels, config)


def train_a_few_steps(model, batches, steps: int = 2, learning_rate: float = 1e-2) -> None:
    """Tasks in turn, as the sampling loop does; the optimizer holds every parameter, as `fit`'s does."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    for step, task in zip(range(steps), itertools.cycle(TASKS)):
        (model.loss(batches[task][step % 4], task) + model.penalty()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()


def test_the_table_builds_every_sharing_that_the_config_offers():
    assert tuple(BUILDERS) == SHARINGS and TrainConfig().sharing == "hard"


def test_hard_sharing_is_todays_model_with_the_same_seed(tiny_encoder_dir, tweets):
    batches, labels = tweets
    hard = tiny_model(tiny_encoder_dir, labels, "hard")
    torch.manual_seed(0)
    today = MultiTaskModel(BertModel.from_pretrained(tiny_encoder_dir), labels, "mean")
    assert list(hard.state_dict()) == list(today.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(hard.state_dict().values(), today.state_dict().values()))
    assert hard.shared_parameters() == list(hard.encoder.parameters()) and float(hard.penalty()) == 0.0


def test_lora_training_changes_only_adapters_and_heads(tiny_encoder_dir, tweets):
    batches, labels = tweets
    model = tiny_model(tiny_encoder_dir, labels, "lora")
    frozen = {name: value.clone() for name, value in model.encoder.state_dict().items()
              if ".lora_" not in name}
    heads = copy.deepcopy(model.heads.state_dict())
    assert model.shared_parameters() == []
    train_a_few_steps(model, batches)
    after = model.encoder.state_dict()
    assert all(torch.equal(value, after[name]) for name, value in frozen.items())  # the encoder's own weights
    assert all(not torch.equal(value, model.heads.state_dict()[name]) for name, value in heads.items())
    for task in TASKS:
        b_weights = [p for name, p in model.encoder.named_parameters() if f"lora_B.{task}." in name]
        assert len(b_weights) == 4 and all(p.abs().sum() > 0 for p in b_weights)  # B starts at zero
    emotion, sentiment = (model.task_state_dict(task) for task in TASKS)
    adapters = [name for name in emotion if name.startswith("adapter.")]
    assert len(adapters) == 8 and all(not torch.equal(emotion[name], sentiment[name]) for name in adapters)


def test_a_lora_step_gives_a_gradient_to_the_sampled_tasks_adapter_and_head_only(tiny_encoder_dir, tweets):
    batches, labels = tweets
    model = tiny_model(tiny_encoder_dir, labels, "lora")
    model.train()
    model.loss(batches["sentiment"][0], "sentiment").backward()
    with_gradient = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_gradient and all((".sentiment." in name and ".lora_" in name)
                                 or name.startswith("heads.sentiment") for name in with_gradient)
    assert len(with_gradient) == 8 + 4  # 2 layers x (query, value) x (A, B), and the head's 4 tensors


@pytest.mark.parametrize("sharing", SHARINGS)
def test_a_task_checkpoint_saved_and_loaded_predicts_the_same(sharing, tiny_encoder_dir, tweets, tmp_path):
    batches, labels = tweets
    model = tiny_model(tiny_encoder_dir, labels, sharing)
    train_a_few_steps(model, batches)
    fresh = tiny_model(tiny_encoder_dir, labels, sharing, seed=1)  # other heads, other LoRA A matrices
    for task in TASKS:
        folder = save_task_checkpoint(model, task, tmp_path / sharing / task, {"epoch": 1})
        assert load_task_checkpoint(fresh.eval(), folder) == task
        batch = batches[task][3]
        with torch.no_grad():
            expected = model(batch["input_ids"], batch["attention_mask"], task)
            assert torch.equal(fresh(batch["input_ids"], batch["attention_mask"], task), expected)
        stored = sum(tensor.numel() for tensor in load_file(folder / TASK_WEIGHTS_FILE).values())
        own = sum(p.numel() for p in model.heads[task].parameters())
        encoder = sum(p.numel() for p in BertModel.from_pretrained(tiny_encoder_dir).parameters())
        adapter = 2 * 2 * (8 * 32 + 32 * 8)
        assert stored == own + (adapter if sharing == "lora" else encoder)


def test_a_checkpoint_of_another_sharing_is_refused_naming_the_folder(tiny_encoder_dir, tweets, tmp_path):
    _, labels = tweets
    folder = save_task_checkpoint(tiny_model(tiny_encoder_dir, labels, "hard"), "emotion", tmp_path / "hard")
    with pytest.raises(OSError, match=f"cannot load the task checkpoint in {folder}.*of a hard model"):
        load_task_checkpoint(tiny_model(tiny_encoder_dir, labels, "lora"), folder)


@pytest.mark.parametrize("sharing", SHARINGS)
def test_a_batch_of_mixed_tasks_predicts_what_calls_per_task_predict(sharing, tiny_encoder_dir, tweets):
    batches, labels = tweets
    model = tiny_model(tiny_encoder_dir, labels, sharing)
    train_a_few_steps(model, batches)
    batch = batches["emotion"][0]  # the same padded tweets, each labelled by one task or the other
    tasks = ["emotion", "sentiment", "sentiment", "emotion", "sentiment", "emotion", "emotion", "sentiment"]
    with torch.no_grad():
        mixed = model.mixed_logits(batch["input_ids"], batch["attention_mask"], tasks)
        alone = {task: model(batch["input_ids"], batch["attention_mask"], task) for task in TASKS}
    for row, task in enumerate(tasks):
        assert mixed[row].shape == (len(labels[task]),)
        torch.testing.assert_close(mixed[row], alone[task][row], rtol=1e-5, atol=1e-6)
    if sharing == "lora":  # the adapters matter: the same tweets through the other task's adapter differ
        features = model.mixed_features(batch["input_ids"], batch["attention_mask"], ["emotion"] * 8)
        other = model.mixed_features(batch["input_ids"], batch["attention_mask"], ["sentiment"] * 8)
        assert (features - other).abs().max() > 1e-3
        with pytest.raises(RuntimeError, match="call model.eval"):
            model.train().mixed_logits(batch["input_ids"], batch["attention_mask"], tasks)


def pairwise_penalty(encoders, strength: float) -> torch.Tensor:
    """The definition, pair by pair: strength / 2 * sum over i < j of ||theta_i - theta_j||^2."""
    total = 0.0
    for first, second in itertools.combinations(encoders, 2):
        total = total + sum((a - b).pow(2).sum() for a, b in zip(first.parameters(), second.parameters()))
    return strength / 2 * total


def test_the_soft_penalty_is_its_pairwise_definition_and_its_gradient_a_finite_difference(tiny_encoder_dir):
    torch.manual_seed(3)
    encoders = [BertModel.from_pretrained(tiny_encoder_dir).double() for _ in range(3)]
    for encoder in encoders[1:]:  # copies that training has moved apart
        for parameter in encoder.parameters():
            parameter.data += 0.01 * torch.randn_like(parameter)
    penalty = soft_penalty(encoders, 0.5)
    torch.testing.assert_close(penalty, pairwise_penalty(encoders, 0.5), rtol=1e-12, atol=0)
    parameters = [p for encoder in encoders for p in encoder.parameters()]
    gradients = torch.autograd.grad(penalty, parameters)
    directions = [torch.randn_like(p) for p in parameters]
    slope = sum((g * d).sum() for g, d in zip(gradients, directions))
    step = 1e-4
    with torch.no_grad():
        moved = []
        for sign in (1, -1):
            for p, d in zip(parameters, directions):
                p += sign * step * d
            moved.append(soft_penalty(encoders, 0.5))
            for p, d in zip(parameters, directions):
                p -= sign * step * d
    torch.testing.assert_close((moved[0] - moved[1]) / (2 * step), slope, rtol=1e-7, atol=0)
    assert float(soft_penalty(encoders, 0.0)) == 0.0


def test_soft_sharing_at_strength_zero_gives_each_copy_its_own_tasks_gradient_only(tiny_encoder_dir, tweets):
    batches, labels = tweets
    model = tiny_model(tiny_encoder_dir, labels, "soft", soft_penalty=0.0)
    batch = batches["emotion"][0]
    alone = HardSharing(copy.deepcopy(model.encoders["emotion"]), {"emotion": labels["emotion"]})
    alone.heads["emotion"].load_state_dict(model.heads["emotion"].state_dict())
    model.train(), alone.train()
    torch.manual_seed(5)
    (model.loss(batch, "emotion") + model.penalty()).backward()
    torch.manual_seed(5)  # the same dropout masks
    alone.loss(batch, "emotion").backward()
    ours = [p.grad for p in (*model.encoders["emotion"].parameters(), *model.heads["emotion"].parameters())]
    theirs = [p.grad for p in alone.parameters()]  # the unused pooler has none in either
    assert sum(g is not None for g in ours) > 30
    assert all(a is b is None or torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    others = [*model.encoders["sentiment"].parameters(), *model.heads["sentiment"].parameters()]
    assert all(p.grad is None for p in others)
    sentiment = copy.deepcopy(model.encoders["sentiment"].state_dict())
    torch.optim.AdamW(model.parameters(), lr=1e-2).step()
    assert all(torch.equal(value, model.encoders["sentiment"].state_dict()[name])
               for name, value in sentiment.items())


def test_a_soft_penalty_pulls_the_copy_the_step_does_not_train(tiny_encoder_dir, tweets):
    batches, labels = tweets
    model = tiny_model(tiny_encoder_dir, labels, "soft", soft_penalty=1.0)
    assert model.penalty().detach().item() == 0.0  # the copies start equal, as the pre-trained encoder
    train_a_few_steps(model, batches, steps=1)  # emotion's copy moves away
    model.train()
    (model.loss(batches["emotion"][1], "emotion") + model.penalty()).backward()
    pulled = [p.grad for p in model.encoders["sentiment"].parameters()]
    assert all(g is not None for g in pulled) and sum(g.abs().sum() for g in pulled) > 0
    assert all(p.grad is None for p in model.heads["sentiment"].parameters())


AGGREGATORS = [method for method in COMBINERS if aggregates_gradients(method)]
LOSS_WEIGHTINGS = [method for method in COMBINERS if not aggregates_gradients(method)]


@pytest.mark.parametrize("sharing", ["lora", "soft"])
@pytest.mark.parametrize("combine", AGGREGATORS)
def test_a_gradient_aggregator_is_refused_where_the_tasks_share_no_parameter(sharing, combine):
    with pytest.raises(ValueError, match=f"combine='{combine}' needs sharing='hard'.*sharing='{sharing}'"):
        TrainConfig(strategy="all-tasks", combine=combine, sharing=sharing)


@pytest.mark.parametrize("sharing", SHARINGS)
def test_loss_weighting_works_with_every_sharing(sharing):
    assert AGGREGATORS == ["pcgrad", "mgda", "upgrad"] and LOSS_WEIGHTINGS == ["equal", "uncertainty"]
    for combine in LOSS_WEIGHTINGS:
        assert TrainConfig(strategy="all-tasks", combine=combine, sharing=sharing).sharing == sharing
    for combine in AGGREGATORS:
        assert TrainConfig(strategy="all-tasks", combine=combine).sharing == "hard"


@pytest.mark.parametrize("change, message", [
    ({"sharing": "partial"}, "unknown sharing 'partial': choose one of hard, lora, soft"),
    ({"sharing": "lora", "lora_rank": 0}, "lora_rank must be at least 1, got 0"),
    ({"sharing": "lora", "lora_alpha": 0.0}, "lora_alpha must be positive, got 0.0"),
    ({"sharing": "lora", "lora_dropout": 1.0}, r"lora_dropout must be in \[0, 1\), got 1.0"),
    ({"sharing": "lora", "lora_target_modules": []},
     r"lora_target_modules must name at least one layer, got \[\]"),
    ({"sharing": "soft", "soft_penalty": -1.0}, "soft_penalty must be 0 or more, got -1.0"),
    ({"lora_rank": 4}, "lora_rank needs sharing='lora', not 'hard'"),
    ({"lora_rank": 4, "lora_dropout": 0.0}, "lora_rank, lora_dropout need sharing='lora', not 'hard'"),
    ({"sharing": "lora", "soft_penalty": 0.1}, "soft_penalty needs sharing='soft', not 'lora'"),
])
def test_a_bad_sharing_setting_is_refused_naming_it(change, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        TrainConfig(**change)


def test_the_command_line_takes_the_sharing_settings():
    args = build_parser().parse_args(["train", "--sharing", "lora", "--lora-rank", "4", "--lora-alpha", "8",
                                      "--lora-target-modules", "query", "key", "value", "--out", "x"])
    config = config_from_arguments(args)
    assert config == TrainConfig(sharing="lora", lora_rank=4, lora_alpha=8.0,
                                 lora_target_modules=["query", "key", "value"])


def test_trainable_parameters_of_each_sharing_on_the_packaged_minilm():
    labels = {"emotion": ["anger", "joy", "optimism", "sadness"],
              "sentiment": ["negative", "neutral", "positive"]}
    encoder, _ = load_encoder()
    encoder_size = sum(p.numel() for p in encoder.parameters())
    heads = sum(384 * 384 + 384 + 384 * len(names) + len(names) for names in labels.values())
    trained = {}
    for sharing in SHARINGS:
        model = BUILDERS[sharing](copy.deepcopy(encoder), labels, TrainConfig(sharing=sharing))
        trained[sharing] = sum(p.numel() for p in model.trained_parameters())
        if isinstance(model, LoraSharing):
            assert [sum(p.numel() for p in model.adapter_parameters(task)) for task in labels] == [73_728] * 2
            assert 6 * 2 * (8 * 384 + 384 * 8) == 73_728  # 6 layers x (query, value) x (A: r x d, B: d x r)
    assert encoder_size == 22_713_216
    assert trained == {"hard": encoder_size + heads, "lora": 2 * 73_728 + heads,
                       "soft": 2 * encoder_size + heads}



def test_the_parameter_table_counts_what_each_task_trains_and_stores(tiny_encoder_dir, tweets):
    _, labels = tweets
    table = parameter_table({sharing: tiny_model(tiny_encoder_dir, labels, sharing) for sharing in SHARINGS})
    encoder = sum(p.numel() for p in BertModel.from_pretrained(tiny_encoder_dir).parameters())
    head = {task: 32 * 32 + 32 + 32 * len(names) + len(names) for task, names in labels.items()}
    adapter = 2 * 2 * (8 * 32 + 32 * 8)
    for task in TASKS:
        assert table.loc[("hard", task)].tolist() == [head[task], encoder, 0, encoder + head[task]]
        assert table.loc[("lora", task)].tolist() == [adapter + head[task], 0, encoder, adapter + head[task]]
        assert table.loc[("soft", task)].tolist() == [encoder + head[task], 0, 0, encoder + head[task]]
