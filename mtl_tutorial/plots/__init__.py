"""Pictures for the lessons; every function returns a matplotlib Figure (nothing is shown or saved).

The model's architecture, dev curves per epoch, label distributions, tweet lengths, pad-token shares,
similarity maps, sampling probabilities, schedules and temperatures, the task mix and task weights per
epoch, confusion matrices, head probabilities, multi- vs single-task, two tasks' gradients and what each
way of combining them makes of them, the scores of several training strategies, a third task's paired
differences per seed, and lesson 4's optimiser: the learning-rate schedule, gradient norms and the clip,
AdamW's step, cross-entropy from logits; what hard, LoRA and soft sharing share, and their scores beside
their costs.

One module per kind of picture: `pipeline` (data, model and a run's history, lessons 0-6), `optimiser`
(lesson 4's optimiser), `gradients` (lesson 6's gradients and strategies, lesson 7's paired differences) and
`sharing` (lesson 8's ways of sharing). Notebooks call them all as `mtl.plots.<name>`.
"""

from .gradients import (combined_gradients, strategy_scores, paired_differences)
from .optimiser import (learning_rate_schedule, gradient_norms, adamw_steps, cross_entropy_probabilities)
from .pipeline import (architecture, dev_curves, label_distribution, token_lengths, sampling_probabilities,
                       annealed_probabilities, schedule_counts, confusion_matrix, pad_fractions,
                       similarity_maps, temperature_effect, head_probabilities, multitask_vs_single_task,
                       sampling_by_epoch, task_weights, gradient_conflict)
from .sharing import sharing_diagram, sharing_scores_and_costs

__all__ = [
    "combined_gradients", "strategy_scores", "paired_differences", "learning_rate_schedule", "gradient_norms",
    "adamw_steps",
    "cross_entropy_probabilities", "architecture", "dev_curves", "label_distribution", "token_lengths",
    "sampling_probabilities", "annealed_probabilities", "schedule_counts", "confusion_matrix",
    "pad_fractions", "similarity_maps", "temperature_effect", "head_probabilities",
    "multitask_vs_single_task", "sampling_by_epoch", "task_weights", "gradient_conflict",
    "sharing_diagram", "sharing_scores_and_costs",
]
