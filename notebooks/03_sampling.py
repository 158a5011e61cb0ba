# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 3 — Task sampling: which task trains at each step?
#
# A multi-task training step takes a batch from **one** task. So before every step the loop must choose a
# task, and over an epoch those choices decide how much each task is trained. With 3k emotion tweets and
# 46k sentiment tweets the choice matters a lot:
#
# * draw tasks in proportion to their size, and the big task takes 93% of the steps: the small task
#   is barely trained, and may be forgotten between its rare turns;
# * draw them uniformly, and the small task's tweets are repeated over and over: it over-fits, while
#   most of the big task is never seen.
#
# The samplers in `mtl_tutorial.sampling` sit on this scale. With training-set sizes $n_i$:
#
# | sampler | probability of task $i$ at a step |
# |---|---|
# | `proportional` (the original tutorial) | $p_i \propto n_i$ |
# | `temperature` | $p_i \propto n_i^{1/T}$: $T=1$ is proportional, large $T$ nearly uniform |
# | `annealed` (Stickland & Murray, 2019) | $p_i \propto n_i^{\alpha}$, $\alpha$ falling from 1 in the first epoch to 0.2 in the last |
# | `uniform` | $p_i = 1/K$ for $K$ tasks |
# | `round_robin` | the tasks in turn: uniform, without the randomness |

# %%
# Colab only: install the package and switch on widgets (elsewhere this cell does nothing).
import sys

PACKAGE_URL = "git+https://github.com/OWNER/mtl-tutorial"  # the repository this notebook comes from
if "google.colab" in sys.modules:
    import os, subprocess

    class Stop(Exception):
        _render_traceback_ = lambda self: [str(self)]  # shown as one line; "Run all" stops here

    fix = "set PACKAGE_URL in this cell to git+https://github.com/<owner>/mtl-tutorial, then run it again"
    if "OWNER" in PACKAGE_URL:
        raise Stop(f"The repository of these notebooks is not set: {fix}.")
    print(f"Installing mtl-tutorial[notebooks] from {PACKAGE_URL} ...")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", f"mtl-tutorial[notebooks] @ {PACKAGE_URL}"],
                         env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}, capture_output=True, text=True)
    if pip.returncode != 0:
        print(pip.stderr, file=sys.stderr)
        raise Stop(f"pip could not install mtl-tutorial from {PACKAGE_URL} (its error is above): {fix}.")
    from google.colab import output
    output.enable_custom_widget_manager()

# %% [markdown]
# **Settings** (one cell decides the scale):

# %%
import mtl_tutorial as mtl

config = mtl.lesson_config()
print(mtl.describe_scale(config))

# %% [markdown]
# We look at the samplers with the **full** training-set sizes, because that is where the problem is.
# Note that the quick setting caps every task at the same number of training tweets, so there all
# samplers give nearly the same mix; the differences below show at full scale.

# %%
# NBVAL_CHECK_OUTPUT

sizes = {name: task.sizes()["train"] for name, task in mtl.load_tasks(config.tasks).items()}
sizes

# %% [markdown]
# ## The probabilities

# %%
# NBVAL_CHECK_OUTPUT
import pandas as pd


pd.DataFrame({sampler: mtl.task_probabilities(sizes, sampler) for sampler in mtl.SAMPLERS}).T.round(3)

# %% [markdown]
# (`annealed` is shown at epoch 1, where it equals `proportional`; the temperature is 2, the default.)

# %%

mtl.plots.sampling_probabilities(sizes);

# %% [markdown]
# What does that mean for the data? An epoch has as many steps as all tasks have batches together. A
# task drawn with probability $p$ gets $p$ times that many steps; divided by its own number of batches,
# that is how many times its training set is gone through per epoch:

# %%
mtl.passes_per_epoch(sizes, config.batch_size).round(2)

# %% [markdown]
# Proportional sampling goes through every task exactly once per epoch. Uniform sampling goes through
# emotion 7.5 times per epoch while seeing only half of sentiment: over 5 epochs, 37 passes over the same
# 3k tweets. Temperature 2 is a compromise: about 3 passes over emotion, 0.85 over sentiment.
#
# ## The realised schedule
#
# The loop draws the schedule of a whole epoch at once, from a generator seeded by (seed, epoch), so
# every process of a multi-GPU run and a resumed run draw exactly the same tasks. The first 60 steps,
# one letter per step:

# %%

for sampler in ("proportional", "temperature", "uniform", "round_robin"):
    steps = mtl.task_schedule(sizes, 60, sampler, seed=config.seed)
    print(f"{sampler:>12}: {''.join(task[0].upper() for task in steps)}")

# %% [markdown]
# Counted over the first 300 steps of an epoch, per sampler:

# %%
mtl.plots.schedule_counts(sizes, steps=300, seed=config.seed);

# %% [markdown]
# Annealed sampling changes with the epoch: proportional at first (learn from all the data), then ever
# closer to uniform (give the small task its turn before the end):

# %%
mtl.plots.annealed_probabilities(sizes, num_epochs=5);

# %% [markdown]
# ## Try it: the temperature
#
# Move the slider. At $T = 1$ the tasks are drawn in proportion to their size; as $T$ grows the curves
# approach the dotted line, uniform sampling. (In a static copy of this notebook the slider does not
# move: run it in Jupyter or Colab.)

# %%

mtl.widgets.temperature_panel(sizes, temperature=config.temperature)

# %% [markdown]
# Which sampler is best is an empirical question: it depends on how related the tasks are and how
# different their sizes. Lesson 4 lets you train with each of them and compare the dev curves.
