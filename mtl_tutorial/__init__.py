"""mtl_tutorial: multi-task learning for tweet classification, one lesson step per module.

    config      TrainConfig: every setting of a run, checked once; the command line is built from it
    data        tasks: find, download (checksummed) and read TweetEval or course-style TSV folders, write them
    tables      your own task as a saved DatasetDict or as CSV, JSON Lines or Parquet files
    batching    tokenise once, pad each batch to its longest tweet, length-grouped shuffled batches per task
    metrics     accuracy, macro-F1, macro-recall and each TweetEval task's official score
    sampling    which task trains at each step, one table: proportional, uniform, temperature, annealed,
                round-robin, adaptive (follows the dev scores)
    combine     or a batch of every task per step, combined (one table): equal, uncertainty, PCGrad, MGDA,
                UPGrad; they take the losses or gradients and compute none
    model       ClassificationHead and MultiTaskModel (one shared encoder, one head per task), save and load
    sharing     how much the tasks share: hard (one encoder), one LoRA adapter per task (PEFT), or soft
                (an encoder copy per task, tied by an L2 penalty); what each task's checkpoint holds
    conflict    the cosine between two tasks' gradients on the shared encoder
    runs        the run folder: its files, the resumable checkpoint, reading a run back
    evaluate    scoring a split, each task's best checkpoint on test, predictions
    train       fit(): the training loop (Accelerate), one step, the per-epoch bookkeeping
    tracking    the curves in TensorBoard too, through Accelerate's trackers (report_to="tensorboard")
    lessons     what the notebooks share: the repository, the lessons' scale, runs trained once and reused,
                lesson 5's comparisons (multi-task against single-task, the best epoch against the last)
    experiments the recorded experiments of lessons 6-8 (recorded/), paired by seed, like against like
    exercises   a package of check functions that run a student's own pieces against the package's, on real
                tweets: its verdicts, its fixtures, and one module of checks per lesson (lesson1_data, ...)
    course      teaching a class: student copies without solutions, an answer key, grading of submissions
    export      each task's best checkpoint as a standard Hugging Face classifier (pipeline-ready), with a
                model card
    optimisation  lesson 4's optimiser explained: a run's first steps recorded (loss, learning rate,
                gradient norm before the clip, AdamW's move) and cross-entropy worked out from logits
    plots       pictures for the lessons (matplotlib figures)
    widgets     ipywidgets panels over the same functions (temperature, training, labelling, quizzes)
    cli         `mtl-tutorial train | evaluate | predict | export | data | course`
    files       writing files and folders atomically;  checksums: SHA-256 of every TweetEval file
    hardware    what the machine computes fast: native bf16 on the CPU, the precision a GPU trains in
    dependencies  the optional packages a setting needs (UPGrad's solvers), checked before a run starts

Notebooks use one namespace: `import mtl_tutorial as mtl`, then `mtl.fit(...)`, `mtl.plots.dev_curves(...)`.
`plots`, `widgets`, `cli`, `exercises`, `course`, `export` and `optimisation` load on first use, so the
training code never needs matplotlib, widgets or model cards.
"""

import importlib

from .batching import BatchStream, EncodedSplit, encode, encode_task, pad_batch, padding_waste
from .combine import (COMBINERS, GradientAggregation, LossWeighting, combined_steps, make_combiner, mgda_pair,
                      pcgrad_pair, uncertainty_weighted_loss)
from .conflict import encoder_gradient, gradient_cosines
from .config import TrainConfig
from .data import TWEETEVAL_TASKS, DataError, Task, load_task, load_tasks, write_tsv_folder
from .evaluate import (evaluate_run, evaluate_split, label_tweet, predict, predict_run, predictions_on_test,
                       results_table)
from .lessons import (capstone_config, describe_scale, lesson_config, lesson_scale, on_colab, open_or_train,
                      runs_folder, single_task_configs, single_task_runs, train_run, training_plan,
                      with_vs_without)
from .lessons import best_vs_last, confusion_of, multitask_vs_single_task, score_of  # lesson 5's comparisons
from .experiments import paired_test, short_experiment, third_task_experiment, with_minus_without  # 6 and 7
from .experiments import seed_spread, sharing_costs, sharing_experiment, sharing_results  # lesson 8
from .metrics import official_score, scores
from .model import (ClassificationHead, MultiTaskModel, build_model, load_encoder, load_model, save_model,
                    similarities)
from .sharing import (BUILDERS, HardSharing, LoraSharing, SoftSharing, build_shared_model,
                      load_task_checkpoint, save_task_checkpoint, soft_penalty)
from .runs import TrainingRun, best_models, load_history, open_run, saved_config
from .sampling import (ADAPTIVE, SAMPLERS, SamplingEpoch, TaskMix, adaptive_probabilities, draw_tasks,
                       passes_per_epoch, plan_epoch, task_probabilities, task_schedule)
from .train import all_tasks_step, fit, train_step

LAZY_MODULES = ("plots", "widgets", "cli", "exercises", "course", "export", "optimisation")

__all__ = [
    "TrainConfig",
    "TWEETEVAL_TASKS", "DataError", "Task", "load_task", "load_tasks", "write_tsv_folder",
    "BatchStream", "EncodedSplit", "encode", "encode_task", "pad_batch", "padding_waste",
    "official_score", "scores",
    "SAMPLERS", "passes_per_epoch", "task_probabilities", "task_schedule",
    "ADAPTIVE", "adaptive_probabilities", "draw_tasks", "SamplingEpoch", "TaskMix", "plan_epoch",
    "COMBINERS", "LossWeighting", "GradientAggregation", "make_combiner", "combined_steps",
    "mgda_pair", "pcgrad_pair", "uncertainty_weighted_loss",
    "encoder_gradient", "gradient_cosines",
    "ClassificationHead", "MultiTaskModel", "build_model", "load_encoder", "load_model", "save_model",
    "similarities",
    "BUILDERS", "HardSharing", "LoraSharing", "SoftSharing", "build_shared_model", "load_task_checkpoint",
    "save_task_checkpoint", "soft_penalty",
    "TrainingRun", "best_models", "load_history", "open_run", "saved_config",
    "evaluate_run", "evaluate_split", "predict", "predict_run", "results_table", "multitask_vs_single_task",
    "predictions_on_test", "confusion_of", "score_of", "best_vs_last", "label_tweet",
    "fit", "train_step", "all_tasks_step",
    "describe_scale", "lesson_config", "lesson_scale", "on_colab", "open_or_train", "runs_folder",
    "short_experiment", "single_task_configs", "single_task_runs", "train_run", "training_plan",
    "capstone_config", "third_task_experiment", "with_minus_without", "paired_test", "with_vs_without",
    "sharing_experiment", "sharing_results", "sharing_costs", "seed_spread",
    *LAZY_MODULES,
]


def __getattr__(name: str):
    """The modules in LAZY_MODULES (`mtl.plots`, `mtl.widgets`, `mtl.exercises`, ...) load when first used."""
    if name in LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'mtl_tutorial' has no attribute {name!r}")
