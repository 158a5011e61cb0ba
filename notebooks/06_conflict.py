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
# # Lesson 6 — When tasks pull apart
#
# **You will learn**
#
# * to measure whether two tasks pull the shared encoder the same way: the cosine of their gradients;
# * what PCGrad, MGDA and UPGrad make of two gradients, drawn in the plane the two span;
# * why an experiment that compares training strategies must compare like with like (steps, learning rate);
# * to read a one-seed table without over-reading it.
#
# **Assumes** lessons 2-4 (the model, task sampling, the training loop) and a little vector algebra (dot
# product, projection). **Takes** about 30 seconds on a 2-core CPU (27 s measured at the CPU lesson scale,
# benchmarks/LESSONS.md); nothing trains, only one step's gradients are computed.

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
# **Every step so far trained ONE task**: the sampler picked it, its batch moved the shared encoder. Another
# way is to take a batch of EVERY task at each step and combine what the tasks ask of the encoder. When the
# tasks' gradients point the same way, adding them is fine; when they point apart, one task's step partly
# undoes the other's, and methods such as PCGrad, MGDA and UPGrad build a step that works against neither.
# This lesson looks at two real gradients, at what each method makes of them, and at what the methods
# did in a short experiment beside the samplers of lesson 3.
#
# **Settings** (one cell decides the scale; here it picks the encoder and the tweets):

# %%
import torch
import torch.nn.functional as F
from transformers.utils import logging

import mtl_tutorial as mtl

logging.disable_progress_bar()  # no "Loading weights" bars in the lessons
config = mtl.lesson_config()
print(mtl.describe_scale(config))

# %% [markdown]
# ## Two gradients of one real step
#
# The model of lesson 2, fresh: the pre-trained encoder and one new head per task. We take one training
# batch of emotion tweets and one of sentiment tweets, as an all-tasks step would, and for each the gradient
# of its loss with respect to the *shared encoder's* weights only: one long vector per task
# (`mtl.encoder_gradient`). Dropout is off, so the numbers do not depend on its random draw.

# %%
torch.manual_seed(config.seed)
tasks = mtl.runs.load_run_tasks(config)
model, tokenizer = mtl.build_model({name: task.label_names for name, task in tasks.items()}, config.model,
                                   config.pooling)
model.eval()
batches = {name: next(mtl.BatchStream(mtl.encode(tokenizer, task.splits["train"], config.max_length),
                                      config.batch_size, config.seed))
           for name, task in tasks.items()}
gradients = {name: mtl.encoder_gradient(model, batch, name) for name, batch in batches.items()}
emotion, sentiment = gradients["emotion"], gradients["sentiment"]
for name, gradient in gradients.items():
    print(f"{name}: {len(batches[name]['labels'])} tweets, a gradient of {gradient.numel():,} numbers, "
          f"length {gradient.norm():.4f}")
print(f"cosine between the two: {F.cosine_similarity(emotion, sentiment, dim=0):+.4f}")

# %% [markdown]
# The cosine printed above is the one `fit` records after every epoch (lesson 5's `gradient_conflict` plot),
# here for a single pair of batches. Near 0 means the two tasks ask for almost unrelated changes of the
# encoder: each step of one task neither helps nor harms the other much. Below 0 they conflict.
#
# ## What each method makes of them
#
# With one batch of every task, a step must turn the two gradients $g_1$ (emotion) and $g_2$ (sentiment)
# into one:
#
# * **equal**: their sum, $g_1 + g_2$ (what adding the two losses gives).
# * **PCGrad** (Yu et al. 2020): if $g_1 \cdot g_2 < 0$, each loses its component along the other,
#   $g_1 - \frac{g_1 \cdot g_2}{|g_2|^2} g_2$, and the step is the sum of the two; otherwise the plain sum.
# * **MGDA** (Sener & Koltun 2018): the point of the segment between $g_1$ and $g_2$ nearest the origin,
#   $a g_1 + (1 - a) g_2$ with $0 \le a \le 1$: the shortest step that decreases both losses, if one exists.
# * **UPGrad** (Quinton & Rey 2024, the `torchjd` library): each gradient is projected onto the cone of
#   directions that conflict with no task, and the projections are averaged. When the two already agree
#   it is their mean.
#
# `mtl.combined_steps` computes all of them as training does (torchjd's weights times the gradients). Every
# step is a combination of $g_1$ and $g_2$, so it lies in the plane the two span; the plot draws that plane,
# its first axis along the emotion gradient.

# %%
steps = mtl.combined_steps(emotion, sentiment)
same = torch.allclose(steps["pcgrad"], mtl.pcgrad_pair(emotion, sentiment))
print("torchjd's PCGrad gives the step of the formula (mtl.pcgrad_pair):", same)
for method, step in steps.items():
    print(f"{method:>7}: length {step.norm():.4f}, cosine with emotion "
          f"{F.cosine_similarity(step, emotion, dim=0):+.3f}, with sentiment "
          f"{F.cosine_similarity(step, sentiment, dim=0):+.3f}")
mtl.plots.combined_gradients(emotion, sentiment, steps, ("emotion", "sentiment"), "one real step");

# %% [markdown]
# Read the printout with the picture. When the cosine is at or above 0, PCGrad has nothing to remove and
# its step is the plain sum (the picture then draws PCGrad's arrow dashed over the equal one, and its
# legend says "the same as equal"); UPGrad's is the mean, the same direction at half the length; MGDA leans
# towards the *shorter* gradient, since the point of the segment nearest the origin lies towards it. With
# gradients this close to unrelated, PCGrad and UPGrad differ from the sum only in how long a step they take,
# which the learning rate can change as well; MGDA also turns the step towards the shorter gradient.
#
# To see the methods act, here is a pair that does conflict, drawn by hand in two dimensions: emotion
# $(4, 0)$ and sentiment $(-2, 1)$.

# %%
first, second = torch.tensor([4.0, 0.0]), torch.tensor([-2.0, 1.0])
hand_made = mtl.combined_steps(first, second)
for method, step in hand_made.items():
    print(f"{method:>7}: {step.numpy().round(3)}, dot with emotion {step @ first:+.2f}, "
          f"with sentiment {step @ second:+.2f}")
mtl.plots.combined_gradients(first, second, hand_made, ("emotion", "sentiment"), "a hand-made pair");

# %% [markdown]
# Now the methods disagree. The plain sum has a negative dot product with one of the tasks, printed above:
# a step along it would *increase* that task's loss (to first order). PCGrad removes from each gradient
# the part that points against the other before adding them; UPGrad does the same with projections onto
# the cone of directions that harm neither, then averages; MGDA takes the shortest point of the dotted
# segment. All three steps have a dot product of 0 or more with both tasks: none works against a task.
#
# ## The methods beside the samplers
#
# Does this matter for emotion and sentiment? `benchmarks/quality.py` trained every way of combining the two
# tasks on one budget: 1,000 training tweets per task, 2 epochs, the packaged MiniLM, **one seed**, learning
# rate 1e-4 (and two arms at 2e-4). The two tasks then have the same size, so proportional, temperature and
# uniform sampling all make the same 50/50 mix. The scores, recorded with the package (`benchmarks/QUALITY.md`
# explains the runs):

# %%
import pandas as pd
from IPython.display import display

experiment = mtl.short_experiment()
with pd.option_context("display.max_colwidth", 80):
    display(experiment)

# %%
mtl.plots.strategy_scores(experiment, title="Test score per arm, one seed, 1,000 tweets per task, 2 epochs");

# %% [markdown]
# The plot has one panel per learning rate, and each panel's dashed lines are its own first arm: the lr
# 1e-4 arms are measured against single-task training at lr 1e-4, the two lr 2e-4 arms against each other
# (no single-task run was made at lr 2e-4, so the table cannot say how much of their higher scores is the
# learning rate and how much is multi-task training). The bars start at 0, so the gaps look as small as they
# are: a few points at most (4.5 at the largest, the adaptive sampler's emotion) out of 55-68.

# %%
sampling = experiment.iloc[1]
all_tasks = experiment[(experiment["strategy"] == "all-tasks") & (experiment["learning_rate"] == 1e-4)]
behind = all_tasks["emotion"] - sampling["emotion"]
print(f"at lr 1e-4, the all-tasks arms minus sampling on emotion: {behind.min():+.1f} to {behind.max():+.1f}")
faster = experiment[experiment["learning_rate"] == 2e-4].set_index("arm")[["emotion", "sentiment"]]
print("at lr 2e-4:\n" + faster.to_string())

# %% [markdown]
# How to read it, honestly:
#
# * **One seed, a tiny budget.** At the larger common budget of `benchmarks/QUALITY.md`, the seed alone moves
#   emotion's score by up to 1.6 points (standard deviation, among the sampling arms). Most differences in the
#   table are of that size, so none of them shows that one way of combining tasks beats another.
# * **Half the optimizer steps.** At lr 1e-4 every all-tasks arm scored below sampling on emotion (the cell
#   above prints by how much). An all-tasks epoch sees as many batches as a sampling epoch, but two at a
#   time: it makes half the optimizer steps. At lr 2e-4 the gap is gone (the two rows printed last). So the
#   all-tasks strategy was handicapped by its step count, not by how it combines the tasks; a fair
#   comparison gives both strategies the same number of steps, or tunes each one's learning rate.
# * **The tasks barely conflict, so the aggregators barely act.** In these runs the cosine between the two
#   tasks' encoder gradients stayed between -0.17 and +0.09 (compare the single pair above). PCGrad then
#   changes few steps (its mean weights stayed near 1), UPGrad stays close to the plain mean, and MGDA leans
#   towards sentiment's shorter gradient: the column `what_the_method_did`.
# * **The adaptive sampler** (`sampler="adaptive"`; lesson 3's table shows only its starting mix,
#   temperature's, because its mix is not fixed: after an epoch in which a task's dev score lies below its
#   target, it moves half the steps to the tasks that lag, in proportion to how far each lags), with the
#   single-task dev scores as targets, moved most steps to emotion, which lagged its target: emotion gained
#   and sentiment lost. It trades one task for the other.
#
# Gradient surgery is built for tasks that pull hard against each other; emotion and sentiment, both about
# how a tweet feels, mostly do not. Where the plot of lesson 5 shows a cosine well below 0 for your own
# tasks, try `mtl.lesson_config(strategy="all-tasks", combine="pcgrad")` (or `"mgda"`, `"upgrad"`,
# `"uncertainty"`) in lesson 4's training; on the command line, `--strategy all-tasks --combine pcgrad`.

# %% [markdown]
# ## Exercises
#
# Write the methods yourself. Replace each `raise NotImplementedError` with your code and run the cell: the
# check runs your function and the package's on hand-made gradients and on real gradients (a small model's,
# on real emotion and sentiment tweets), and says what is right or wrong. The hidden cell after each
# exercise holds a solution.
#
# **Exercise 1: PCGrad's projection.** Given two gradients $g_1$ and $g_2$, return the pair PCGrad adds up:
# when $g_1 \cdot g_2 < 0$, $g_1 - \frac{g_1 \cdot g_2}{|g_2|^2} g_2$ and
# $g_2 - \frac{g_1 \cdot g_2}{|g_1|^2} g_1$; otherwise both unchanged.

# %%
def pcgrad_projections(g1, g2):
    """(g1, g2), each without its component along the other when they conflict."""
    raise NotImplementedError("the dot product first; project only when it is negative")


mtl.exercises.check_pcgrad_projection(pcgrad_projections)

# %% tags=["solution"] points=2 jupyter={"source_hidden": true}
# Solution
def pcgrad_projections(g1, g2):
    """(g1, g2), each without its component along the other when they conflict."""
    dot = g1 @ g2
    if dot >= 0:
        return g1, g2
    return g1 - dot / (g2 @ g2) * g2, g2 - dot / (g1 @ g1) * g1


mtl.exercises.check_pcgrad_projection(pcgrad_projections)

# %% [markdown]
# **Exercise 2: MGDA for two tasks.** Of the points $a g_1 + (1 - a) g_2$ with $0 \le a \le 1$, return the
# one nearest the origin. Setting the derivative of $|a g_1 + (1 - a) g_2|^2$ to 0 gives
# $a = \frac{(g_2 - g_1) \cdot g_2}{|g_2 - g_1|^2}$; a value outside $[0, 1]$ means an end is nearest.

# %%
def min_norm_point(g1, g2):
    """The point of the segment between g1 and g2 nearest the origin."""
    raise NotImplementedError("a from the formula, kept within [0, 1], then a * g1 + (1 - a) * g2")


mtl.exercises.check_mgda_two_tasks(min_norm_point)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def min_norm_point(g1, g2):
    """The point of the segment between g1 and g2 nearest the origin."""
    difference = g2 - g1
    share = ((difference @ g2) / (difference @ difference)).clamp(0, 1)
    return share * g1 + (1 - share) * g2


mtl.exercises.check_mgda_two_tasks(min_norm_point)

# %% [markdown]
# **Exercise 3: uncertainty weighting.** Kendall, Gal & Cipolla (2018) give each task a learned
# log-variance $s_i$ and train on $\sum_i e^{-s_i} L_i + s_i$: a task whose loss stays large learns a large
# $s_i$ and a smaller weight $e^{-s_i}$. Write that loss for a tensor of losses and a tensor of log-variances
# (with torch operations, so that the $s_i$ can learn).

# %%
def uncertainty_loss(losses, log_variances):
    """sum_i exp(-s_i) L_i + s_i."""
    raise NotImplementedError("torch.exp(-log_variances) times the losses, plus the log-variances, summed")


mtl.exercises.check_uncertainty_loss(uncertainty_loss)

# %% tags=["solution"] points=1 jupyter={"source_hidden": true}
# Solution
def uncertainty_loss(losses, log_variances):
    """sum_i exp(-s_i) L_i + s_i."""
    return (torch.exp(-log_variances) * losses + log_variances).sum()


mtl.exercises.check_uncertainty_loss(uncertainty_loss)

# %% [markdown]
# ## Quiz
#
# On what this lesson's cells showed. Choose an answer, then press **Check**.

# %% colab={"cellView": "form"} tags=["quiz"] jupyter={"source_hidden": true}
# @title The quiz (its answers are in this cell's code: choose before you look)
Question = mtl.widgets.Question
cosine = F.cosine_similarity(emotion, sentiment, dim=0).item()
changed = not torch.allclose(steps["pcgrad"], steps["equal"])
shorter = "emotion" if emotion.norm() < sentiment.norm() else "sentiment"
mgda_share = mtl.make_combiner("mgda", 2).weights(torch.stack([emotion, sentiment]))
mgda_gap = experiment.set_index("method").loc["mgda", "sentiment"] - sampling["sentiment"]
questions = [
    Question("Did PCGrad change the step of the real pair of gradients above?",
             ["yes", "no"], "yes" if changed else "no",
             f"Their cosine is {cosine:+.3f}: PCGrad projects only when it is below 0"
             + (", as here." if changed else "; here it is not, so PCGrad's step is the plain sum.")),
    Question("Towards which task's gradient did MGDA lean on the real pair?", ["emotion", "sentiment"],
             "emotion" if mgda_share[0] > mgda_share[1] else "sentiment",
             f"MGDA's weights were emotion {mgda_share[0]:.2f}, sentiment {mgda_share[1]:.2f}: the point "
             f"nearest the origin lies towards the shorter gradient, here {shorter}'s."),
    Question("At lr 1e-4, why did the all-tasks arms score below sampling on emotion?",
             ["the gradients conflicted", "they made half as many optimizer steps",
              "PCGrad removed emotion's gradient"],
             "they made half as many optimizer steps",
             "Two batches per step: half the steps per epoch. At lr 2e-4 the gap was gone."),
    Question("With one seed, can the table say that MGDA is better for sentiment than sampling?",
             ["yes", "no"], "no",
             f"Each arm ran once, so the table has no seed-to-seed spread to measure the "
             f"{mgda_gap:.1f}-point gap against (at QUALITY.md's larger budget, sentiment's seeds spread by "
             "about 0.5, emotion's by up to 1.6): it needs several seeds, paired, as lesson 5's controlled "
             "experiment had."),
]
mtl.widgets.quiz(questions)

# %% [markdown]
# ## Key takeaways
#
# * Two tasks' gradients on the shared encoder can be compared by their cosine: above 0 they agree, below
#   0 one task's step partly undoes the other's. For emotion and sentiment it stays near 0.
# * PCGrad removes the conflicting part of each gradient, MGDA takes the shortest step that helps both,
#   UPGrad projects and averages; when the gradients do not conflict, PCGrad and UPGrad change little
#   beyond the step's length, and MGDA leans towards the shorter gradient.
# * A comparison of strategies is only fair when both get the same number of steps, or each its own tuned
#   learning rate: the all-tasks arms' deficit at lr 1e-4 was their halved step count, not their way of
#   combining.
# * One seed cannot rank methods whose scores differ by less than the seed-to-seed spread.
#
# **Next:** lesson 7, the capstone: you assemble your own pieces of lessons 1-4 into one run, compare it
# with `fit`'s, and ask whether a third task, irony, helps emotion and sentiment.

# %% [markdown]
# ## References
#
# * Ruder, S. (2017). An Overview of Multi-Task Learning in Deep Neural Networks. *arXiv:1706.05098*.
# * Kendall, A., Gal, Y. and Cipolla, R. (2018). Multi-Task Learning Using Uncertainty to Weigh Losses for
#   Scene Geometry and Semantics. *CVPR 2018*.
# * Sener, O. and Koltun, V. (2018). Multi-Task Learning as Multi-Objective Optimization. *NeurIPS 2018*.
# * Yu, T., Kumar, S., Gupta, A., Levine, S., Hausman, K. and Finn, C. (2020). Gradient Surgery for
#   Multi-Task Learning. *NeurIPS 2020*.
# * Quinton, P. and Rey, V. (2024). Jacobian Descent for Multi-Objective Optimization. *arXiv:2406.16232*
#   (UPGrad; the `torchjd` library).
