"""TrainConfig checks every setting when it is made; the command line is built from its fields."""

import dataclasses

import pytest

from mtl_tutorial.cli import TRAIN_OPTIONS, build_parser, config_from_arguments
from mtl_tutorial.config import MIXED_PRECISIONS, POOLINGS, TrainConfig
from mtl_tutorial.sampling import SAMPLERS


@pytest.mark.parametrize("change, message", [
    ({"sampler": "sqrt"}, "unknown sampler 'sqrt': choose one of " + ", ".join(SAMPLERS)),
    ({"pooling": "max"}, "unknown pooling 'max': choose one of " + ", ".join(POOLINGS)),
    ({"mixed_precision": "fp8"},
     "unknown mixed_precision 'fp8': choose one of " + ", ".join(MIXED_PRECISIONS)),
    ({"learning_rate": 0.0}, "learning_rate must be positive, got 0.0"),
    ({"learning_rate": "1e-4"}, "learning_rate must be a float, got '1e-4'"),
    ({"epochs": 0}, "epochs must be at least 1, got 0"),
    ({"epochs": 2.5}, "epochs must be an int, got 2.5"),
    ({"batch_size": True}, "batch_size must be an int, got True"),
    ({"max_train_examples": 0}, "max_train_examples must be at least 1, got 0"),
    ({"max_eval_examples": -5}, "max_eval_examples must be at least 1, got -5"),
    ({"temperature": -1.0}, "temperature must be positive, got -1.0"),
    ({"warmup_ratio": 1.0}, r"warmup_ratio must be in \[0, 1\), got 1.0"),
    ({"weight_decay": -0.1}, "weight_decay must be 0 or more, got -0.1"),
    ({"max_grad_norm": 0}, "max_grad_norm must be positive, got 0"),
    ({"seed": -1}, r"seed must be between 0 and 2\*\*32 - 1, got -1"),
])
def test_a_bad_setting_is_refused_at_once_naming_the_field(change, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        TrainConfig(**change)


def test_good_settings_pass_and_none_means_no_cap():
    config = TrainConfig(learning_rate=1, max_train_examples=None, warmup_ratio=0.0, gradient_probe_batches=0)
    assert config.learning_rate == 1 and config.max_train_examples is None


def test_every_option_of_train_comes_from_the_config():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices.values()
    train = next(action for action in commands if action.prog.endswith("train"))
    flags = {action.dest: action for action in train._actions}
    for item in dataclasses.fields(TrainConfig):
        if item.name in TRAIN_OPTIONS:
            assert flags[item.name].help == item.metadata["help"]
            assert flags[item.name].default == getattr(TrainConfig(), item.name)
            assert tuple(flags[item.name].choices or ()) == tuple(item.metadata.get("choices") or ())
        else:
            assert item.name not in flags  # option=False keeps a field off the command line
    args = parser.parse_args(["train", "--pooling", "cls", "--epochs", "3", "--out", "x"])
    assert config_from_arguments(args) == TrainConfig(pooling="cls", epochs=3)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--pooling", "max", "--out", "x"])
