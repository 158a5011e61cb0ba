"""mtl_tutorial: multi-task learning for tweet classification, one lesson step per module.

data -> model -> sampling -> train (+ metrics); plots and widgets serve the notebooks.
"""

from .data import TWEETEVAL_TASKS, DataError, Task, encode_task, load_task, load_tasks, write_tsv_folder
from .metrics import official_score, scores
from .model import ClassificationHead, MultiTaskModel, build_model, load_encoder, load_model, predict, save_model
from .sampling import SAMPLERS, task_probabilities, task_schedule
from .train import TrainConfig, TrainingRun, evaluate, fit, load_history

__all__ = [
    "TWEETEVAL_TASKS", "DataError", "Task", "encode_task", "load_task", "load_tasks", "write_tsv_folder",
    "official_score", "scores",
    "ClassificationHead", "MultiTaskModel", "build_model", "load_encoder", "load_model", "predict", "save_model",
    "SAMPLERS", "task_probabilities", "task_schedule",
    "TrainConfig", "TrainingRun", "evaluate", "fit", "load_history",
]
