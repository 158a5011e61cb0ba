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
# # Lesson 8 — How much to share
#
# **You will learn**
#
# * what the tasks share and what each task owns in hard sharing, LoRA adapters and soft sharing, drawn;
# * to count, from the real models, the parameters each task trains and the numbers its checkpoint stores;
# * what a LoRA layer computes, $W x + b + \frac{\alpha}{r} B A x$, checked against PEFT's own layer, and the
#   penalty that ties soft sharing's encoder copies;
# * to weigh scores against costs (time, memory, checkpoint size) in a recorded experiment, and to say what
#   one seed can and cannot show.
#
# **Assumes** lesson 2 (the shared encoder and one head per task), lesson 4 (the training loop, AdamW) and,
# for the experiment, lesson 5 (multi-task against single-task). **Takes** about 15 seconds on a 2-core CPU
# (14 s measured at the CPU lesson scale, benchmarks/LESSONS.md); nothing trains: the lesson builds the
# three models to count their parameters and reads a recorded experiment.

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
# **Every lesson so far shared everything**: one encoder, trained by every task, and a small head per task
# (hard sharing, lesson 2). That is one end of a range. At the other end each task keeps a model of its own
# and nothing is shared. Between the two lie ways of sharing *some* of the model:
#
# * **hard sharing** (Caruana 1997): one encoder that every task trains, one head per task.
# * **LoRA adapters** (Hu et al. 2021): the pre-trained encoder is *frozen* and shared; each task trains only
#   a small low-rank update of some of its layers, and its head. Adapters, small trained pieces in a frozen
#   transformer, one set per task, come from Houlsby et al. (2019); Pfeiffer et al. (2021) combine several
#   tasks' adapters. LoRA is one kind: an update of layers the encoder already has.
# * **soft sharing** (Duong et al. 2015): each task has its own copy of the encoder, and a penalty on the
#   distance between the copies' weights pulls them together.
#
# This lesson builds the three, counts what each task trains and stores, and reads an experiment that
# trained all three on emotion and sentiment.
#
# **Settings** (one cell decides the scale; here it picks the encoder):

# %%
import dataclasses

from IPython.display import display
from transformers.utils import logging

import mtl_tutorial as mtl

logging.disable_progress_bar()  # no "Loading weights" bars in the lessons
config = mtl.lesson_config()
print(mtl.describe_scale(config))

# %% [markdown]
# ## Three models, counted
#
# `mtl.build_shared_model` builds a fresh model of each kind from the same pre-trained encoder, as
# `TrainConfig(sharing="hard" | "lora" | "soft")` asks: `lora_rank`, `lora_alpha` and `lora_target_modules`
# set the adapters, `soft_penalty` the strength of the tie. Every model answers the same calls (a forward
# pass per task, its loss, `task_state_dict`), so `fit` trains each of them with the same loop.

# %%
tasks = mtl.runs.load_run_tasks(config)
labels = {name: task.label_names for name, task in tasks.items()}
models = {sharing: mtl.build_shared_model(labels, dataclasses.replace(config, sharing=sharing))[0]
          for sharing in mtl.BUILDERS}
print(f"LoRA: rank r = {config.lora_rank}, alpha = {config.lora_alpha:g}, on the layers "
      f"{', '.join(config.lora_target_modules)}; soft: penalty strength {config.soft_penalty:g}")
counts = mtl.sharing.parameter_table(models)
display(counts.style.format("{:,}"))

# %% [markdown]
# Per way of sharing and task, counted from the models' own parameters (`parameter_table`):
#
# * **trained by this task alone**: what only this task's loss changes: its head, and its adapter or its
#   encoder copy.
# * **trained by every task**: what every task's loss changes (hard sharing's encoder).
# * **frozen**: what nobody trains (LoRA's pre-trained encoder).
# * **stored in its checkpoint**: the numbers that the task's best checkpoint must hold
#   (`mtl.save_task_checkpoint`): with hard and soft sharing, an encoder and the head; with LoRA, only the
#   adapter and the head, since the frozen encoder is the pre-trained one, which every task can load again.
#
# The picture, with those counts under each panel:

# %%
mtl.plots.sharing_diagram(counts);

# %%
first = next(iter(labels))
hard, lora, soft = (counts.xs(sharing, level="sharing") for sharing in ("hard", "lora", "soft"))
adapter_and_head = lora.loc[first, "trained by this task alone"]
hard_trains = hard.loc[first, ["trained by this task alone", "trained by every task"]].sum()
print(f"{first}'s LoRA adapter and head: {adapter_and_head:,} parameters, "
      f"{adapter_and_head / hard_trains:.2%} of the {hard_trains:,} that hard sharing trains for it (its "
      "head and the shared encoder)")
for sharing, table in (("hard", hard), ("lora", lora), ("soft", soft)):
    stored = table["stored in its checkpoint"]
    print(f"{sharing}: each task's checkpoint holds {stored.mean():,.0f} numbers on average, "
          f"{4 * stored.mean() / 2**20:.1f} MiB in fp32; the model trains "
          f"{sum(p.numel() for p in models[sharing].trained_parameters()):,} parameters in all")
names = list(models["lora"].task_state_dict(first))
print(f"the first two of the {len(names)} tensors of {first}'s LoRA checkpoint: {', '.join(names[:2])}")

# %% [markdown]
# Read the counts with the picture:
#
# * **Hard sharing** trains almost every parameter with every task: a head is a small fraction of the
#   encoder. It is also the cheapest to *serve*: one encoder pass answers every task. But each task's best
#   checkpoint is a whole encoder, and the tasks' gradients meet on the same weights (lesson 6).
# * **LoRA** trains a small fraction of that per task, and its checkpoint is small enough to keep one per
#   task, or one per customer. The encoder's pre-trained weights stay as they were, so one task cannot spoil
#   them for another, but nothing one task learns reaches another either: each task's adapter sees only
#   its own tweets.
# * **Soft sharing** trains a whole encoder per task: twice the parameters for two tasks, and their
#   gradients and AdamW's state (lesson 4) twice over. Its penalty lets the copies differ where their tasks
#   need it. At strength 0 the copies are simply separate single-task models trained side by side.
#
# ## The recorded experiment
#
# Does less sharing score better or worse, and what does it save? `benchmarks/quality.py` trained every way
# of sharing at the **CPU lesson scale** (lesson 4's settings on a laptop: the packaged MiniLM, 12.5% of each
# task's training tweets, uniform sampling, 3 epochs, 500 dev and 500 test tweets per task), each run in its
# own process so that its peak memory is its own, and recorded each task's dev and test score (x 100, from
# the task's best dev epoch) beside the run's costs (`mtl.sharing_experiment()`, described in
# `mtl_tutorial/recorded/README.md`). Every arm trained at the lesson's learning rate; `benchmarks/quality.py`
# also has an arm "multi-task uniform lora lr 1e-3" (LoRA at 5 times that rate), which the cells below show
# when the recorded file holds it.

# %%
experiment = mtl.sharing_experiment()
lesson_rate = mtl.lesson_config(scale="cpu").learning_rate
print(f"learning rate of the CPU lesson scale: {lesson_rate:g}; arms recorded, with their seeds:")
for arm, seeds in experiment.groupby("arm", sort=False)["seed"]:
    print(f"  {arm}: seeds {', '.join(str(seed) for seed in sorted(set(seeds)))}")
results = mtl.sharing_results(experiment, seed=77)
display(results.round(2))

# %% [markdown]
# `sharing_results` keeps one seed (77) of every arm, so that every row trained on the same data sample: like
# against like (their new heads, though, start from the same weights only in hard, soft and single-task
# emotion, which draw them in the same order). The figure draws it; where an arm has other seeds, their test
# scores are the black dots. Every axis starts at 0, so a gap looks as large as it is.

# %%
mtl.plots.sharing_scores_and_costs(experiment, seed=77, title="Single-task, hard, LoRA and soft sharing at "
                                   "the CPU lesson scale");

# %%
for task, rows in results.groupby(level="task", sort=False):
    rows = rows.droplevel("task")
    best = rows["test"].idxmax()
    versus = rows["test - single-task"].drop("single-task", errors="ignore").dropna()
    print(f"{task}: the highest test score is {best}'s, {rows.loc[best, 'test']:.1f}; against single-task "
          + (", ".join(f"{name} {value:+.1f}" for name, value in versus.items()) or "(no single-task run)"))
costs = mtl.sharing_costs(results)
if "hard" in costs.index:
    print("each run's memory and checkpoint as a share of the hard run's (its time: see below):")
    display((costs / costs.loc["hard"])[["peak MiB", "checkpoint MiB"]].round(3))
arms = set(results.index.get_level_values("sharing"))
if {"LoRA", "LoRA at lr 1e-3"} <= arms:
    faster = (results.xs("LoRA at lr 1e-3", level="sharing")["test"]
              - results.xs("LoRA", level="sharing")["test"])
    print(f"LoRA at lr 1e-3 ({1e-3 / lesson_rate:g} x the lesson's) minus LoRA at {lesson_rate:g}, test: "
          + ", ".join(f"{task} {value:+.1f}" for task, value in faster.items()))

# %% [markdown]
# What one seed can tell, honestly: the hard arm was also trained with other seeds. The range of its test
# score over them is how far the seed alone moves a score (a different sample of tweets, other initial
# heads, another order of batches). A difference between two one-seed arms smaller than that range is not
# evidence that one way of sharing beats the other:

# %%
spread = mtl.seed_spread(experiment, "hard")
for row in spread.itertuples():
    differences = results.loc[row.Index, "test - single-task"].drop("single-task", errors="ignore").dropna()
    larger = int((differences.abs() > row.range).sum())
    print(f"{row.Index}: hard's test score ranged {row.lowest:.1f} to {row.highest:.1f} over {row.seeds} "
          f"seed(s), a range of {row.range:.1f}; {larger} of the {len(differences)} differences from "
          "single-task above are larger" + (" (one seed shows no range)" if row.seeds < 2 else ""))
if spread.empty:
    print("no hard run is recorded here, so the seed's effect cannot be seen")

# %% [markdown]
# How to read it:
#
# * **Scores.** The lines above say, per task, which arm scored highest and how far each way of sharing is
#   from single-task training. Set them beside the hard arm's seed range: only a difference larger than it
#   says something, and even that is one seed's word, for one task pair, at one small scale. Against
#   single-task *emotion* every multi-task arm gains far more than the seed range, but that run made only a
#   few dozen steps (lesson 5: it trains 407 tweets an epoch, while uniform sampling gives emotion half of
#   a multi-task run's steps), so that gain is partly steps, not sharing; compare the ways of sharing with
#   each other first.
# * **Costs.** The table of shares above gives each run's peak memory and checkpoint size as a share of the
#   hard run's; set those beside the score differences. LoRA's checkpoint per task is a small fraction of a
#   whole encoder, as the counts promised. Its time per step cannot fall as far as its parameter count:
#   each step still runs the whole frozen encoder forward, and backward through it to reach the adapters;
#   what LoRA saves is the frozen weights' gradients and their AdamW update. Soft sharing holds an encoder,
#   its gradients and its AdamW state per task.
# * **Time per epoch, read with care.** Every multi-task run takes the same steps (the same sampler on the
#   same tweets), so their times *would* compare directly; but these runs did not share the machine alike
#   (`mtl_tutorial/recorded/README.md`: the hard run had both cores, LoRA and soft one core each beside
#   another run), so the recorded times compare LoRA with soft only. The fair comparison of speed is one
#   that times every sharing side by side in one process per sharing, as `benchmarks/sharing_costs.py`
#   does (`benchmarks/RESULTS.md`). A single-task epoch trains one task's tweets only, so its time is not
#   comparable with theirs either.
# * **LoRA's learning rate.** The lesson's learning rate was chosen for full fine-tuning (lesson 4). An
#   adapter starts at zero and trains few parameters, and LoRA is often run at a higher rate; so LoRA's
#   score here may say as much about the learning rate as about LoRA. A larger experiment shows how much
#   (`benchmarks/QUALITY.md`: all of emotion's training tweets, 6,000 of sentiment's, 2 epochs,
#   temperature sampling, seeds 77-79, paired with hard sharing on the same seeds): at full fine-tuning's
#   rate there (1e-4), LoRA scored 23.6 points below hard sharing on emotion and 4.1 below on sentiment; at
#   10 times that rate, only 1.9 and 0.8 below, while training 2% of the parameters. Soft sharing was within
#   the seed-to-seed spread of hard sharing on both tasks. A fair comparison tunes each way of sharing's
#   learning rate (lesson 6 met the same trap with step counts).
#
# Ruder (2017) surveys when sharing helps: tasks that are related, a small task beside a large one. Here,
# the question is as much about costs as scores: many tasks on one server favour LoRA's small checkpoints
# (and hard sharing's single pass when every task is asked at once); tasks that pull apart favour less
# sharing than hard.

# %% [markdown]
# ## Exercises
#
# Write the two pieces yourself. Replace each `raise NotImplementedError` with your code and run the cell:
# the check runs your function on real tweets and real layers and says what is right or wrong. The hidden
# cell after each exercise holds a solution.
#
# **Exercise 1: the LoRA update.** A linear layer maps a vector $x$ to $W x + b$. LoRA freezes $W$ and $b$
# and adds a low-rank update: $W x + b + \frac{\alpha}{r} B A x$, with $A$ of shape $r \times$ in, $B$ of
# shape out $\times r$, and $r$ much smaller than the layer's width. Write it for `x` holding one vector per
# token in its last axis (as in `nn.Linear`, $W x$ is then `x @ W.T`). The check compares your output with
# that of PEFT's own LoRA layer on MiniLM's first query layer, fed the embeddings of real emotion tweets, for
# two ranks.

# %%
def lora_forward(x, weight, bias, A, B, alpha, rank):
    """W x + b + (alpha / r) B A x for every vector x in the last axis of `x`."""
    raise NotImplementedError("the frozen layer, x @ weight.T + bias, plus the scaled update: A, then B")


mtl.exercises.check_lora_update(lora_forward)

# %% tags=["solution"] points=2 jupyter={"source_hidden": true}
# Solution
def lora_forward(x, weight, bias, A, B, alpha, rank):
    """W x + b + (alpha / r) B A x for every vector x in the last axis of `x`."""
    return x @ weight.T + bias + (alpha / rank) * (x @ A.T @ B.T)


mtl.exercises.check_lora_update(lora_forward)

# %% [markdown]
# The check's answer says how far the update moves the outputs. PEFT starts $B$ at zero, so a fresh
# adapter changes nothing: training begins from the pre-trained encoder exactly, and only $A$ and $B$
# learn. $\alpha / r$ keeps the update's size about the same when you change the rank.
#
# **Exercise 2: the soft-sharing penalty.** Duong et al. (2015) tie the tasks' copies with
# $\frac{s}{2} \sum_{i < j} \lVert \theta_i - \theta_j \rVert^2$, where $\theta_i$ is every weight of encoder
# copy $i$ and $s$ the strength. Write it for a list of encoders (`torch.nn.Module`s with the same
# parameters, in the same order: `encoder.parameters()`), with torch operations, so that training can
# follow its gradient.

# %%
def penalty_of(encoders, strength):
    """strength / 2 * the sum over pairs i < j of ||theta_i - theta_j||^2."""
    raise NotImplementedError("for each pair i < j, the squared differences of their parameters, summed")


mtl.exercises.check_soft_penalty(penalty_of)

# %% tags=["solution"] points=2 jupyter={"source_hidden": true}
# Solution
def penalty_of(encoders, strength):
    """strength / 2 * the sum over pairs i < j of ||theta_i - theta_j||^2."""
    total = 0
    for i in range(len(encoders)):
        for j in range(i + 1, len(encoders)):
            pairs = zip(encoders[i].parameters(), encoders[j].parameters())
            total = total + sum((a - b).pow(2).sum() for a, b in pairs)
    return strength / 2 * total


mtl.exercises.check_soft_penalty(penalty_of)

# %% [markdown]
# ## Quiz
#
# On what this lesson's cells showed. Choose an answer, then press **Check**.

# %% colab={"cellView": "form"} tags=["quiz"] jupyter={"source_hidden": true}
# @title The quiz (its answers are in this cell's code: choose before you look)
Question = mtl.widgets.Question
stored = counts["stored in its checkpoint"].groupby(level="sharing").mean()
trained = {sharing: sum(p.numel() for p in model.trained_parameters()) for sharing, model in models.items()}
ranges = ", ".join(f"{row.Index} {row.range:.1f}" for row in spread.itertuples()) or "not recorded here"
questions = [
    Question("Which way of sharing stores the fewest numbers in each task's checkpoint?",
             ["hard", "lora", "soft"], stored.idxmin(),
             f"On average per task: hard {stored['hard']:,.0f}, lora {stored['lora']:,.0f}, soft "
             f"{stored['soft']:,.0f}. Hard and soft store a whole encoder (the shared one, or the task's own "
             "copy) and the head; LoRA stores only the adapter and the head, as the frozen encoder is the "
             "pre-trained one."),
    Question("Which model trains the most parameters, so holds the most gradients and AdamW state?",
             ["hard", "lora", "soft"], max(trained, key=trained.get),
             f"hard {trained['hard']:,}, lora {trained['lora']:,}, soft {trained['soft']:,}: soft trains an "
             "encoder per task, hard one encoder for all, LoRA only the adapters and heads."),
    Question("A LoRA adapter as PEFT makes it, before any training: what does the layer output?",
             ["W x + b, the pre-trained layer's output", "random numbers", "zeros"],
             "W x + b, the pre-trained layer's output",
             "B starts at zero, so (alpha / r) B A x = 0 and the layer gives W x + b, as before. Not random: "
             "A is random, but B A is zero. Not zeros: W and b are the pre-trained weights, kept."),
    Question("Soft sharing at penalty strength 0 is...",
             ["hard sharing", "separate single-task models trained side by side", "LoRA"],
             "separate single-task models trained side by side",
             "With nothing pulling the copies together, each encoder copy learns from its own task only. "
             "Hard sharing is the opposite end (one encoder for all); LoRA freezes the encoder, which soft "
             "sharing trains."),
    Question("Two ways of sharing, one seed each, differ by less than the hard arm's test-score range over "
             "its seeds. Does that show that one of them shares better?",
             ["yes", "no"], "no",
             f"The hard arm's range over its seeds ({ranges}) is how far the seed alone moves a score; a "
             "smaller difference may be the seed's luck. It needs several seeds of both, paired."),
]
mtl.widgets.quiz(questions)

# %% [markdown]
# ## Key takeaways
#
# * Sharing is a range: hard sharing trains one encoder with every task, LoRA freezes the encoder and gives
#   each task a small adapter, soft sharing gives each task its own encoder and pulls the copies together.
# * Count what each task trains and stores from the model itself (`parameter_table`): a LoRA task's
#   checkpoint is a small fraction of a hard or soft one; soft sharing trains an encoder per task.
# * A LoRA layer computes $W x + b + \frac{\alpha}{r} B A x$ with $B$ starting at zero; the soft penalty is
#   $\frac{s}{2} \sum_{i<j} \lVert \theta_i - \theta_j \rVert^2$, a pull towards the copies' mean.
# * Judge a way of sharing by its scores *and* its costs, like with like (one seed, the same steps), and
#   against the seed-to-seed spread: one seed cannot rank arms that differ by less.
#
# **Next:** this is the last lesson. To go on, train a way of sharing yourself: in lesson 4's settings cell,
# `mtl.lesson_config(sharing="lora")` (or `sharing="soft"`, or `sharing="lora", lora_rank=4`), or on the
# command line `mtl-tutorial train --tasks emotion sentiment --sharing lora`, and judge the run with lesson
# 5's tools against the seed spread. To teach the course, `TEACHING.md` builds the student copies and grades
# them; the README lists every lesson and module.

# %% [markdown]
# ## References
#
# * Caruana, R. (1997). Multitask Learning. *Machine Learning* 28, 41-75.
# * Duong, L., Cohn, T., Bird, S. and Cook, P. (2015). Low Resource Dependency Parsing: Cross-lingual
#   Parameter Sharing in a Neural Network Parser. *ACL 2015*.
# * Houlsby, N., Giurgiu, A., Jastrzebski, S., Morrone, B., de Laroussilhe, Q., Gesmundo, A., Attariyan, M.
#   and Gelly, S. (2019). Parameter-Efficient Transfer Learning for NLP. *ICML 2019*.
# * Hu, E. J., Shen, Y., Wallis, P., Allen-Zhu, Z., Li, Y., Wang, S., Wang, L. and Chen, W. (2021). LoRA:
#   Low-Rank Adaptation of Large Language Models. *arXiv:2106.09685* (ICLR 2022).
# * Pfeiffer, J., Kamath, A., Rücklé, A., Cho, K. and Gurevych, I. (2021). AdapterFusion: Non-Destructive
#   Task Composition for Transfer Learning. *EACL 2021*.
# * Ruder, S. (2017). An Overview of Multi-Task Learning in Deep Neural Networks. *arXiv:1706.05098*.
