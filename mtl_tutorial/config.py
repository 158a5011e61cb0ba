"""Every setting of a run in one dataclass, checked once when it is made.

Each field carries its help text (and its choices); `cli.py` builds the `train` command's options from
them, so a new setting is one edit here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .combine import COMBINERS, aggregates_gradients
from .data import TWEETEVAL_TASKS
from .sampling import ADAPTIVE, SAMPLERS

POOLINGS = ("mean", "cls", "pooler")
MIXED_PRECISIONS = ("no", "bf16", "fp16")
STRATEGIES = ("sample", "all-tasks")
TRACKERS = ("tensorboard",)  # Accelerate's trackers a run can report its curves to
SHARINGS = ("hard", "lora", "soft")  # built in sharing.py
SHARING_SETTINGS = {"lora": ("lora_rank", "lora_alpha", "lora_target_modules", "lora_dropout"),
                    "soft": ("soft_penalty",)}


def setting(default, help: str, choices: tuple | None = None, option: bool = True, compare: bool = True,
            **more):
    """A config field with its help text; `option=False` keeps it off the command line. `choices` may be
    a method table (sampling.SAMPLERS, combine.COMBINERS): a method added to it is a choice at once.
    `compare=False` marks a setting that changes no number (where the curves are logged): two configs that
    differ only there are the same run, so it can be resumed or read back with the setting changed."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), compare=compare,
                     metadata={"help": help, "option": option, **more})
    return field(default=default, compare=compare,
                 metadata={"help": help, "choices": choices, "option": option, **more})


@dataclass
class TrainConfig:
    """Everything that defines a run. The defaults are the original tutorial's recipe."""

    tasks: list[str] = setting(["emotion", "sentiment"],
                               f"TweetEval names ({', '.join(TWEETEVAL_TASKS)}) or folders")
    model: str | None = setting(None, "hub id (roberta-base) or folder; "
                                      "default: the packaged MiniLM (offline)")
    pooling: str = setting("mean", "one vector per tweet: mean of tokens, first token, "
                                   "or the encoder's pooler", POOLINGS)
    strategy: str = setting("sample", "sample: one task per step; all-tasks: a batch of every task per step, "
                            "combined by --combine", STRATEGIES)
    sampler: str = setting("proportional", "with --strategy sample: which task trains at each step",
                           SAMPLERS)
    temperature: float = setting(2.0, "for --sampler temperature: p_i ∝ n_i^(1/T); adaptive starts from it")
    target_scores: dict[str, float] | None = setting(
        None, "for --sampler adaptive: each task's target official dev score as TASK=SCORE, e.g. its "
              "single-task score (default: the task's best dev score so far)")
    combine: str | None = setting(None, "with --strategy all-tasks: how the tasks' losses or gradients are "
                                        "combined (default equal)", COMBINERS)
    sharing: str = setting("hard", "how much the tasks share: hard (one encoder), lora (the encoder frozen, "
                           "a LoRA adapter per task), soft (an encoder copy per task, tied by an L2 penalty)",
                           SHARINGS)
    lora_rank: int = setting(8, "with --sharing lora: the rank r of each adapter's update B A")
    lora_alpha: float = setting(16.0, "with --sharing lora: the update B A x is scaled by alpha / r")
    lora_target_modules: list[str] = setting(["query", "value"], "with --sharing lora: the encoder's linear "
                                             "layers that get an adapter, by name (query key value dense)")
    lora_dropout: float = setting(0.1, "with --sharing lora: dropout on the adapter's input")
    soft_penalty: float = setting(0.01, "with --sharing soft: the strength s of the tie "
                                        "s/2 * sum over pairs of tasks of ||theta_i - theta_j||^2")
    epochs: int = setting(5, "passes over the tasks' training data")
    batch_size: int = setting(32, "training tweets per step")
    eval_batch_size: int = setting(128, "tweets per batch when scoring", option=False)
    learning_rate: float = setting(2e-5, "AdamW's peak learning rate")
    weight_decay: float = setting(0.0, "AdamW's weight decay", option=False)
    warmup_ratio: float = setting(0.1, "share of the steps spent warming up the learning rate", option=False)
    max_grad_norm: float = setting(1.0, "gradients are clipped to this norm before each step", option=False)
    max_length: int = setting(64, "tweets are cut at this many tokens")
    seed: int = setting(77, "fixes the data order, the task draws, the heads and dropout")
    max_train_examples: int | None = setting(None, "cap on training tweets per task (a random sample); "
                                                   "none = all")
    train_fraction: float | None = setting(None, "keep this share (0-1] of every task's training tweets "
                                                 "(a random sample), so the tasks keep their size ratio; "
                                                 "none = all")
    max_eval_examples: int | None = setting(None, "cap on dev and test tweets per task (quick demos only)")
    group_by_length: bool = setting(True, "shuffled length buckets: same data and task mix, less padding",
                                    option=False)
    mixed_precision: str = setting("no", "bf16 or fp16 autocast; bf16 only on hardware that has it",
                                   MIXED_PRECISIONS)
    gradient_probe_batches: int = setting(4, "per epoch, batches per task for the gradient-conflict probe; "
                                             "0 = off", option=False)
    report_to: str | None = setting(None, "also log the curves through Accelerate's tracker: tensorboard "
                                          "writes RUN/logs/ (tensorboard --logdir RUN/logs)",
                                    TRACKERS, compare=False)
    log_every: int = setting(50, "with --report-to: log each task's training loss and the learning rate "
                                 "every this many steps", compare=False)
    data_dir: str | None = setting(None, "an existing copy of TweetEval's datasets/ folder", location=True)
    cache_dir: str | None = setting(None, "where downloads go (default ~/.cache/mtl_tutorial)", location=True)
    base_url: str | None = setting(None, "a mirror of TweetEval's datasets/, e.g. file:///path/to/datasets",
                                   location=True)

    def __post_init__(self):
        # A Path or a single task name is accepted; stored as plain strings, the config
        # round-trips through JSON.
        tasks = [self.tasks] if isinstance(self.tasks, (str, Path)) else self.tasks
        self.tasks = [str(task) for task in tasks]
        for name in ("model", "data_dir", "cache_dir", "base_url"):
            if getattr(self, name) is not None:
                setattr(self, name, str(getattr(self, name)))
        for item in dataclasses.fields(self):
            check_setting(item, getattr(self, item.name))
        check_strategy(self)
        check_sharing(self)

    def data_location(self) -> dict:
        """Where the tasks' files are found: the keyword arguments of `data.load_task`."""
        return {item.name: getattr(self, item.name)
                for item in dataclasses.fields(self) if item.metadata.get("location")}


AT_LEAST_ONE = ("lora_rank", "epochs", "batch_size", "eval_batch_size", "max_length",
                "max_train_examples", "max_eval_examples", "log_every")
POSITIVE = ("lora_alpha", "temperature", "learning_rate", "max_grad_norm")


def check_setting(item: dataclasses.Field, value) -> None:
    """Refuse a value that would only fail later, deep inside training, with a message naming the field."""
    name, choices = item.name, item.metadata.get("choices")
    if value is None and item.default is None:  # left unset: no cap, the packaged model, no combine method
        return
    if choices and value not in choices:
        raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
    if value is None or name == "tasks":
        return
    kind = {"int": int, "float": (int, float), "bool": bool, "str": str}.get(str(item.type).split(" | ")[0])
    if kind and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        kind_name = str(item.type).split(" | ")[0]
        raise ValueError(f"{name} must be {'an' if kind_name == 'int' else 'a'} {kind_name}, got {value!r}")
    if name in AT_LEAST_ONE and value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    if name in POSITIVE and not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    if name == "seed" and not 0 <= value < 2**32:
        raise ValueError(f"seed must be between 0 and 2**32 - 1, got {value}")
    if name in ("weight_decay", "gradient_probe_batches", "soft_penalty") and value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value}")
    if name == "train_fraction" and not 0 < value <= 1:
        raise ValueError(f"train_fraction must be in (0, 1], got {value}")
    if name in ("warmup_ratio", "lora_dropout") and not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    if name == "lora_target_modules" and (not value or not all(isinstance(word, str) for word in value)):
        raise ValueError(f"lora_target_modules must name at least one layer, got {value!r}")


def check_strategy(config: TrainConfig) -> None:
    """Refuse settings the strategy has no use for; strategy "all-tasks" combines by "equal" unless told."""
    if config.strategy == "sample" and config.combine is not None:
        raise ValueError(f"combine={config.combine!r} needs strategy='all-tasks' (--strategy all-tasks): "
                         "with sampling, each step trains one task and there is nothing to combine")
    if config.strategy == "all-tasks":
        if config.sampler != TrainConfig.sampler:
            raise ValueError(f"sampler={config.sampler!r} needs strategy='sample': strategy 'all-tasks' "
                             "trains every task at every step and samples nothing")
        config.combine = config.combine or "equal"
    if config.target_scores is not None:
        if config.sampler != ADAPTIVE:
            raise ValueError(f"target_scores are for sampler='adaptive', not {config.sampler!r}")
        if not isinstance(config.target_scores, dict):
            raise ValueError(f"target_scores must map task names to scores, got {config.target_scores!r}")
        wrong = {task: score for task, score in config.target_scores.items()
                 if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 < score <= 1}
        if wrong:
            raise ValueError(f"target scores are official dev scores between 0 and 1 (e.g. 0.76), "
                             f"got {wrong}")


def check_sharing(config: TrainConfig) -> None:
    """Refuse a gradient aggregator where the tasks train no parameter in common, and settings of a
    sharing the run does not use."""
    if config.sharing != "hard" and config.combine and aggregates_gradients(config.combine):
        raise ValueError(f"combine={config.combine!r} needs sharing='hard': it aggregates the tasks' "
                         f"gradients on the parameters they share, and with sharing={config.sharing!r} they "
                         "train none in common (combine equal or uncertainty works with every sharing)")
    for sharing, names in SHARING_SETTINGS.items():
        changed = [name for name in names if getattr(config, name) != default_of(name)]
        if changed and config.sharing != sharing:
            raise ValueError(f"{', '.join(changed)} {'needs' if len(changed) == 1 else 'need'} "
                             f"sharing={sharing!r}, not {config.sharing!r}")


def default_of(name: str):
    item = next(item for item in dataclasses.fields(TrainConfig) if item.name == name)
    return item.default_factory() if item.default is dataclasses.MISSING else item.default
