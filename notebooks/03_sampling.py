# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: jupyter,colab,tags,points,-all
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
#   each epoch sees only about half of the big task.
#
# The samplers in `mtl_tutorial.sampling` sit on this scale. With training-set sizes $n_i$:
#
# | sampler | probability of task $i$ at a step |
# |---|---|
# | `proportional` (the original tutorial) | $p_i \propto n_i$ |
# | `temperature` | $p_i \propto n_i^{1/T}$: $T=1$ is proportional, large $T$ nearly uniform |
# | `annealed` | $p_i \propto n_i^{\alpha}$, $\alpha$ falling from 1 in the first epoch to 0.2 in the last |
# | `uniform` | $p_i = 1/K$ for $K$ tasks |
# | `round_robin` | the tasks in turn: uniform, without the randomness |
#
# Temperature sampling comes from multilingual translation, where it balances languages of very different
# sizes (Arivazhagan et al., 2019); annealed sampling comes from Stickland & Murray (2019). One more sampler,
# `adaptive`, has no fixed mix: after an epoch in which a task's dev score lies below its target (by default
# its own best so far), it moves half the steps to the tasks that lag, in proportion to how far each lags
# (lesson 6 shows what it did).
#
# **You will learn**
#
# * why two tasks of very different sizes need a sampling rule, and what each sampler gives each task;
# * to turn probabilities into steps and passes over each task's data per epoch;
# * why an epoch's schedule is drawn from a seeded generator, and how sampling relates to weighting losses.
#
# **Assumes** lessons 1 and 2 (the two tasks' sizes, the model) and the idea of a probability distribution.
# **Takes** under half a minute on a 2-core CPU (17 s measured at the CPU lesson scale, 15 s on a GPU,
# benchmarks/LESSONS.md); nothing trains.

# %%
# Colab only: install the package (a wheel beside this notebook, else its repository) and switch on widgets.
import sys

PACKAGE_URL = "git+https://github.com/OWNER/mtl-tutorial"  # the repository this notebook comes from
if "google.colab" in sys.modules:
    import glob, os, subprocess

    class Stop(Exception):
        _render_traceback_ = lambda self: [str(self)]  # shown as one line; "Run all" stops here

    wheels = [wheel for folder in ("", "/content/drive/MyDrive/", "/content/drive/MyDrive/*/")
              for wheel in glob.glob(folder + "mtl_tutorial-*.whl")]  # here, or in your mounted Drive
    url = "file://" + os.path.abspath(max(wheels, key=os.path.getmtime)) if wheels else PACKAGE_URL
    fix = ("put the course's mtl_tutorial-*.whl beside this notebook (Files panel) or in your mounted Drive, "
           "or set PACKAGE_URL to git+https://github.com/<owner>/mtl-tutorial; then run this cell again")
    if "OWNER" in url:
        raise Stop(f"No mtl_tutorial wheel beside this notebook and no repository set: {fix}.")
    print(f"Installing mtl-tutorial[notebooks] from {url} ...")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", f"mtl-tutorial[notebooks] @ {url}"],
                         env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}, capture_output=True, text=True)
    if pip.returncode != 0:
        print(pip.stderr, file=sys.stderr)
        raise Stop(f"pip could not install mtl-tutorial from {url} (its error is above): {fix}.")
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
# The CPU lesson scale keeps the same share of every task, so the ratio below holds there too; the CI
# scale caps every task at the same number of tweets, so there all samplers give nearly the same mix.

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
# NBVAL_CHECK_OUTPUT
mtl.passes_per_epoch(sizes, config.batch_size).round(2)

# %% [markdown]
# Proportional sampling goes through every task once per epoch *on average*: it draws the tasks at random,
# so in a given epoch a task may get a few batches more or fewer than it has. (MT-DNN, Liu et al. 2019,
# shuffles the batches of all tasks together instead, which is proportional sampling without that
# randomness.) Uniform sampling, in the table above, goes through emotion several times per epoch while
# seeing only about half of sentiment: over 5 epochs, dozens of passes over the same 3k tweets. Temperature
# 2 lies in between.
#
# ## The realised schedule
#
# The loop draws the schedule of a whole epoch at once, from a generator seeded by (seed, epoch), so
# every process of a multi-GPU run and a resumed run draw exactly the same tasks. The first 60 steps,
# one letter per step:

# %%
# NBVAL_CHECK_OUTPUT

for sampler in ("proportional", "temperature", "uniform", "round_robin"):
    steps = mtl.task_schedule(sizes, 60, sampler, seed=config.seed)
    print(f"{sampler:>12}: {''.join(task[0].upper() for task in steps)}")

# %% [markdown]
# Counted over the first 300 steps of an epoch, per sampler (round robin gives the tasks turns, so its two
# lines lie on top of each other: the thin dashed one is drawn over the thick one):

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
# different their sizes. Lesson 4 lets you train with each of them and compare the dev curves. Toolkits
# such as jiant (Pruksachatkun et al., 2020) offer a similar choice of samplers.
#
# ## Sampling versus loss weighting
#
# Sampling is one way to balance tasks; weighting their losses is the other.
#
# * **Sampling** changes *how often* each task trains: every step is one task's batch, and the sampler
#   decides whose.
# * **Loss weighting** changes *how much* each task counts in a step: every step takes a batch of every
#   task and minimises $\sum_i w_i L_i$, one weighted sum of the tasks' losses.
#
# The two meet in expectation. A step that draws task $i$ with probability $p_i$ has the expected loss
# $\sum_i p_i L_i$, so proportional sampling is, on average, a loss weighted by data size,
# $w_i = n_i / \sum_j n_j$. The difference is in the noise and the cost: sampling runs one batch per step
# and moves the encoder by one task at a time; weighting runs every task's batch at every step.
#
# The package does both. `--strategy sample` (the default) is this lesson; `--strategy all-tasks` takes a
# batch of every task at each step and combines them by `--combine` (see `mtl_tutorial/combine.py`):
#
# | `combine` | how the tasks are combined |
# |---|---|
# | `equal` | the plain sum of the losses, every $w_i = 1$ |
# | `uncertainty` | $\sum_i e^{-s_i} L_i + s_i$ with a learned $s_i$ per task (Kendall et al., 2018) |
# | `pcgrad` | a task's encoder gradient loses its part that conflicts with another's (Yu et al., 2020) |
# | `mgda` | the shortest convex combination of the gradients (Sener & Koltun, 2018) |
# | `upgrad` | torchjd's aggregator: each gradient projected so that it conflicts with none, then averaged |
#
# Under `pcgrad`, `mgda` and `upgrad` every task's gradient on the shared encoder is computed apart, and
# the step is built so that it does not work against any task: they are remedies for the task
# interference of lesson 2, which lesson 5 measures and lesson 6 takes apart.
#
# ## Exercises
#
# Write the sampler yourself. Replace each `raise NotImplementedError` with your code and run the cell: the
# check runs your function and the package's with the real TweetEval sizes and says what is right or
# wrong. The hidden cell after each exercise holds a solution.
#
# **Exercise 1: temperature sampling.** Given each task's number of training tweets $n_i$ and a
# temperature $T$, return each task's probability $p_i = n_i^{1/T} / \sum_j n_j^{1/T}$.

# %%
def temperature_probabilities(sizes, temperature):
    """{task: probability} with p_i proportional to n_i ** (1 / T)."""
    raise NotImplementedError("weigh each size, then divide by the total weight")


mtl.exercises.check_temperature(temperature_probabilities)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def temperature_probabilities(sizes, temperature):
    """{task: probability} with p_i proportional to n_i ** (1 / T)."""
    weights = {task: size ** (1 / temperature) for task, size in sizes.items()}
    total = sum(weights.values())
    return {task: weight / total for task, weight in weights.items()}


mtl.exercises.check_temperature(temperature_probabilities)

# %% [markdown]
# **Exercise 2: steps per task in one epoch.** An epoch has as many steps as all tasks have batches
# together (a task of $n$ tweets has $\lceil n / b \rceil$ batches of $b$). A task drawn with probability
# $p_i$ gets, on average, $p_i$ of those steps. Return that expected number of steps for each task.

# %%
def draws_per_epoch(sizes, batch_size, probabilities):
    """{task: expected number of steps in one epoch} when each step draws a task with `probabilities`."""
    raise NotImplementedError("count the batches of every task, then share them out by probability")


mtl.exercises.check_draws_per_epoch(draws_per_epoch)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def draws_per_epoch(sizes, batch_size, probabilities):
    """{task: expected number of steps in one epoch} when each step draws a task with `probabilities`."""
    steps = sum(-(-size // batch_size) for size in sizes.values())  # -(-n // b) rounds up
    return {task: probabilities[task] * steps for task in sizes}


mtl.exercises.check_draws_per_epoch(draws_per_epoch)

# %% [markdown]
# **Exercise 3: draw an epoch's schedule.** Return a list of `steps` task names, each drawn with the given
# probabilities. The same `seed` must give the same list (every process of a multi-GPU run, and a run
# resumed after a crash, must train the same task at the same step), and your function must not reseed or
# draw from the global random generators, whose draws (dropout, data order) belong to the rest of the run.

# %%
import torch


def draw_schedule(probabilities, steps, seed):
    """A list of `steps` task names drawn with `probabilities`, the same for the same seed."""
    raise NotImplementedError("make a torch.Generator from the seed and draw with torch.multinomial")


mtl.exercises.check_schedule(draw_schedule)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def draw_schedule(probabilities, steps, seed):
    """A list of `steps` task names drawn with `probabilities`, the same for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    tasks = list(probabilities)
    weights = torch.tensor([probabilities[task] for task in tasks])
    draws = torch.multinomial(weights, steps, replacement=True, generator=generator)
    return [tasks[i] for i in draws.tolist()]


mtl.exercises.check_schedule(draw_schedule)

# %% [markdown]
# ## Quiz
#
# On what this lesson's cells showed. Choose an answer, then press **Check**.

# %% colab={"cellView": "form"} tags=["quiz"] jupyter={"source_hidden": true}
# @title The quiz (its answers are in this cell's code: choose before you look)
Question = mtl.widgets.Question
proportional = mtl.task_probabilities(sizes, "proportional")
passes = mtl.passes_per_epoch(sizes, config.batch_size)
emotion_passes = {sampler: f"{value:.2f}" for sampler, value in passes["emotion"].items()}
mtl.widgets.quiz([
    Question("With proportional sampling, what share of the steps trains emotion?",
             ["about 7%", "about 20%", "half of them"],
             "about 7%" if proportional["emotion"] < 0.1 else "about 20%" if proportional["emotion"] < 0.35
             else "half of them",
             f"p = {proportional['emotion']:.3f}: emotion has {sizes['emotion']:,} of the "
             f"{sum(sizes.values()):,} training tweets."),
    Question("With uniform sampling, how many times per epoch is emotion's training set gone through?",
             sorted(set(emotion_passes.values()), key=float), emotion_passes["uniform"],
             "Half the steps go to emotion, but it has far fewer batches than sentiment: "
             + ", ".join(f"{sampler} {value}" for sampler, value in emotion_passes.items()) + "."),
    Question("What does raising the temperature T do to the mix of tasks?",
             ["gives the big task even more steps", "moves it towards uniform", "makes the draw less random"],
             "moves it towards uniform",
             "The exponent 1/T shrinks towards 0, so every n_i^(1/T) approaches 1 (the slider above)."),
    Question("Why is an epoch's schedule drawn from a generator seeded by (seed, epoch)?",
             ["it is faster", "every process, and a resumed run, draws the same tasks",
              "so that the tasks alternate"],
             "every process, and a resumed run, draws the same tasks",
             "The original tutorial drew with NumPy's unseeded global generator (exercise 3)."),
])

# %% [markdown]
# ## Key takeaways
#
# * With 3k emotion and 46k sentiment tweets, proportional sampling gives emotion about 7% of the steps;
#   uniform sampling gives it half, and goes through its tweets many times per epoch.
# * Temperature and annealed sampling sit between the two; which is best is an empirical question.
# * The schedule of an epoch is drawn from a generator seeded by (seed, epoch): every process, and a
#   resumed run, trains the same task at the same step.
# * Sampling is, in expectation, a weighting of the tasks' losses; `--strategy all-tasks` weighs them at
#   every step instead.
#
# **Next:** lesson 4 writes the training loop that follows this schedule, and lets you train with each
# sampler.

# %% [markdown]
# ## References
#
# * Stickland, A. C. and Murray, I. (2019). BERT and PALs: Projected Attention Layers for Efficient
#   Adaptation in Multi-Task Learning. *ICML 2019*.
# * Arivazhagan, N. et al. (2019). Massively Multilingual Neural Machine Translation in the Wild: Findings
#   and Challenges. arXiv:1907.05019.
# * Liu, X., He, P., Chen, W. and Gao, J. (2019). Multi-Task Deep Neural Networks for Natural Language
#   Understanding. *ACL 2019*.
# * Pruksachatkun, Y. et al. (2020). jiant: A Software Toolkit for Research on General-Purpose Text
#   Understanding Models. *ACL 2020, System Demonstrations*.
# * Kendall, A., Gal, Y. and Cipolla, R. (2018). Multi-Task Learning Using Uncertainty to Weigh Losses for
#   Scene Geometry and Semantics. *CVPR 2018*.
# * Yu, T. et al. (2020). Gradient Surgery for Multi-Task Learning. *NeurIPS 2020*.
# * Sener, O. and Koltun, V. (2018). Multi-Task Learning as Multi-Objective Optimization. *NeurIPS 2018*.
