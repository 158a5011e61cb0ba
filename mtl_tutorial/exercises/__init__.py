"""Exercises for lessons 1-8: you write one piece of the pipeline, a check runs it against the package.

Each `check_...` function takes your function (or class), runs it and the package's own version on real
TweetEval tweets, and returns a `Verdict`: passed or not, and in plain words what is right or wrong. Read a
check's source to see what it tries: the checks are written to be read. A check never changes the global
random generators of your notebook.

    verdicts             Verdict, Wrong, `exercise`, `call`: running your code and answering in words
    fixtures             the real data of the checks: TweetEval tweets, MiniLM, one tiny random encoder
    lesson1_data         check_encode, check_collate, check_majority_baseline
    lesson2_model        check_mean_pooling, check_head, check_forward
    lesson3_sampling     check_temperature, check_draws_per_epoch, check_schedule
    lesson4_training     check_train_step, check_best_epochs, hand_loop_vs_fit
    lesson5_evaluation   check_sentiment_score, check_stance_score, check_confusion
    lesson6_conflict     check_pcgrad_projection, check_mgda_two_tasks, check_uncertainty_loss
    lesson7_capstone     train_with_your_pieces (lessons 1-4's pieces in one run), compare_with_fit
    lesson8_sharing      check_lora_update, check_soft_penalty (for the lesson on how much to share)

Notebooks call them as `mtl.exercises.check_...`: this package re-exports every check.
"""

from .fixtures import tiny_encoder, tiny_model
from .lesson1_data import check_collate, check_encode, check_majority_baseline
from .lesson2_model import check_forward, check_head, check_mean_pooling
from .lesson3_sampling import check_draws_per_epoch, check_schedule, check_temperature
from .lesson4_training import (best_epochs_by_fit, check_best_epochs, check_train_step, hand_loop_vs_fit,
                               recorded_history)
from .lesson5_evaluation import check_confusion, check_sentiment_score, check_stance_score
from .lesson6_conflict import (check_mgda_two_tasks, check_pcgrad_projection, check_uncertainty_loss,
                               real_gradients)
from .lesson7_capstone import YourPieces, compare_with_fit, train_with_your_pieces
from .lesson8_sharing import check_lora_update, check_soft_penalty
from .verdicts import Verdict, Wrong, exercise

__all__ = [
    "Verdict", "Wrong", "exercise", "tiny_encoder", "tiny_model",
    "check_encode", "check_collate", "check_majority_baseline",
    "check_mean_pooling", "check_head", "check_forward",
    "check_temperature", "check_draws_per_epoch", "check_schedule",
    "check_train_step", "check_best_epochs", "hand_loop_vs_fit", "recorded_history", "best_epochs_by_fit",
    "check_sentiment_score", "check_stance_score", "check_confusion",
    "check_pcgrad_projection", "check_mgda_two_tasks", "check_uncertainty_loss", "real_gradients",
    "YourPieces", "train_with_your_pieces", "compare_with_fit",
    "check_lora_update", "check_soft_penalty",
]
