"""Combining the tasks at one step: each method against its formula on hand-made gradients, torchjd against
the plain-torch versions, and short all-tasks runs of every method on real TweetEval data."""

import json
import math
import os
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from accelerate.state import AcceleratorState
from safetensors.torch import load_file
from torchjd.aggregation import MGDA, PCGrad, UPGrad
from torchjd.autojac import backward as torchjd_backward
from torchjd.autojac import jac_to_grad

from conftest import save_tiny_encoder

from mtl_tutorial.cli import main
from mtl_tutorial.batching import encode_task
from mtl_tutorial.combine import COMBINERS, make_combiner, mgda_pair, pcgrad_pair, uncertainty_weighted_loss
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.data import load_tasks
from mtl_tutorial.model import MultiTaskModel, build_model
from mtl_tutorial.runs import STATE_FILE
from mtl_tutorial.train import aggregate_encoder_gradients, fit

# ---------------------------------------------------------------------------------------------
# Each method against its formula
# ---------------------------------------------------------------------------------------------


def test_pcgrad_projects_two_conflicting_gradients_onto_each_others_normal_plane():
    first, second = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # dot product -1: they conflict
    # first loses -1/2 x second: (0.5, 0.5), orthogonal to second;
    # second loses -1 x first: (0, 1), orthogonal to first
    assert torch.allclose(pcgrad_pair(first, second), torch.tensor([0.5, 1.5]))
    agreeing = torch.tensor([1.0, 1.0])
    assert torch.allclose(pcgrad_pair(first, agreeing), first + agreeing)  # no conflict: the sum


def test_mgda_finds_the_min_norm_point_between_two_gradients():
    first, second = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    # a = (g2 - g1)·g2 / |g2 - g1|^2 = 3/5: 0.6 (1, 0) + 0.4 (-1, 1) = (0.2, 0.4)
    assert torch.allclose(mgda_pair(first, second), torch.tensor([0.2, 0.4]))
    on_the_segment = [(a * first + (1 - a) * second).norm() for a in torch.linspace(0, 1, 1001)]
    assert mgda_pair(first, second).norm() == pytest.approx(min(on_the_segment).item(), abs=1e-6)
    # the shorter gradient, when it is the nearest point itself: a is kept within [0, 1]
    shorter, longer = torch.tensor([1.0, 0.0]), torch.tensor([3.0, 0.0])
    assert torch.allclose(mgda_pair(shorter, longer), shorter)


def test_uncertainty_weighting_loss_and_gradient_follow_kendall_et_al():
    losses = torch.tensor([2.0, 0.5], requires_grad=True)
    log_variances = torch.tensor([0.3, -0.2], requires_grad=True)
    total = uncertainty_weighted_loss(losses, log_variances)
    assert total.item() == pytest.approx(math.exp(-0.3) * 2.0 + 0.3 + math.exp(0.2) * 0.5 - 0.2)
    total.backward()
    assert losses.grad.tolist() == pytest.approx([math.exp(-0.3), math.exp(0.2)])  # each weight: exp(-s_i)
    assert log_variances.grad.tolist() == pytest.approx([1 - math.exp(-0.3) * 2.0, 1 - math.exp(0.2) * 0.5])
    at_optimum = torch.log(losses.detach()).requires_grad_()  # s_i = log L_i: the best s for these losses
    uncertainty_weighted_loss(losses.detach(), at_optimum).backward()
    assert at_optimum.grad.abs().max() < 1e-6


def random_pairs(count: int = 20, size: int = 50):
    generator = torch.Generator().manual_seed(0)
    return [tuple(torch.randn(2, size, generator=generator)) for _ in range(count)]


def test_torchjd_pcgrad_and_mgda_agree_with_the_two_task_formulas():
    pairs = random_pairs()
    assert sum(float(first @ second < 0) for first, second in pairs) >= 5  # conflicts are really tested
    for first, second in pairs:
        jacobian = torch.stack([first, second])
        assert torch.allclose(PCGrad()(jacobian), pcgrad_pair(first, second), atol=1e-5)
        assert torch.allclose(MGDA()(jacobian), mgda_pair(first, second), atol=1e-4)


def test_upgrad_never_conflicts_with_either_task():
    for first, second in random_pairs():
        step = UPGrad()(torch.stack([first, second]))
        assert step @ first >= -1e-4 and step @ second >= -1e-4
    same_way = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # no conflict: UPGrad is the mean
    assert torch.allclose(UPGrad()(same_way), same_way.mean(0), atol=1e-3)


def test_the_combiner_holds_learned_weights_only_for_uncertainty():
    assert [len(list(make_combiner(method, 2).parameters())) for method in COMBINERS] == [0, 1, 0, 0, 0]
    assert make_combiner("uncertainty", 3).state_dict()["log_variances"].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="unknown combine method 'gradnorm': choose one of equal, unc"):
        make_combiner("gradnorm", 2)


def test_the_loss_terms_of_the_tasks_add_up_to_the_combined_loss():
    losses = torch.tensor([1.4, 0.7])
    for method, combined in (("equal", losses.sum()), ("uncertainty", None)):
        combiner = make_combiner(method, 2)
        if method == "uncertainty":
            combiner.log_variances.data = torch.tensor([0.4, -0.3])
            combined = uncertainty_weighted_loss(losses, combiner.log_variances)
        terms = sum(combiner.loss_term(loss, index) for index, loss in enumerate(losses))
        assert terms.item() == pytest.approx(combined.item())
    assert combiner.weights(2).tolist() == pytest.approx([math.exp(-0.4), math.exp(0.3)])


# ---------------------------------------------------------------------------------------------
# One all-tasks step on a real model
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_and_batches(tiny_encoder_dir, tweeteval_dir):
    """The tiny BERT with heads for emotion and irony, dropout off, and a batch of 8 real tweets per task."""
    loaded = load_tasks(["emotion", "irony"], data_dir=tweeteval_dir)
    tasks = {name: task.capped(8, 8, 0) for name, task in loaded.items()}
    model, tokenizer = build_model({name: task.label_names for name, task in tasks.items()},
                                   str(tiny_encoder_dir))
    model.eval()
    batches = {}
    for name, task in tasks.items():
        train = encode_task(tokenizer, task, 32)["train"]
        batches[name] = train.batch(list(range(len(train))))
    return model, batches


def one_process(loss_scale: float | None = None):
    """What aggregate_encoder_gradients asks of an Accelerator: one process, and fp16's loss scaler if any."""
    scaler = SimpleNamespace(get_scale=lambda: loss_scale) if loss_scale else None
    return SimpleNamespace(scaler=scaler, num_processes=1)


def task_losses(model, batches) -> dict:
    return {task: F.cross_entropy(model(batch["input_ids"], batch["attention_mask"], task), batch["labels"])
            for task, batch in batches.items()}


@pytest.mark.parametrize("method", ["pcgrad", "mgda", "upgrad"])
def test_the_encoder_gradient_is_torchjds_aggregation_and_each_head_gets_its_own(model_and_batches, method):
    model, batches = model_and_batches
    model.zero_grad(set_to_none=True)
    _, weights = aggregate_encoder_gradients(model, batches, make_combiner(method, 2), one_process())
    ours = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    model.zero_grad(set_to_none=True)
    losses = task_losses(model, batches)
    encoder = [p for p in model.encoder.parameters()]
    heads = {task: torch.autograd.grad(loss, list(model.heads[task].parameters()), retain_graph=True)
             for task, loss in losses.items()}
    torchjd_backward(list(losses.values()), inputs=encoder)  # the Jacobian (a row per task) in each .jac
    torchjd_weights = jac_to_grad(encoder, type(make_combiner(method, 2).aggregator)())
    assert torch.allclose(weights, torchjd_weights, atol=1e-4)
    for name, parameter in model.encoder.named_parameters():
        if parameter.grad is not None:
            assert torch.allclose(ours[f"encoder.{name}"], parameter.grad, atol=1e-6), name
    for task, gradients in heads.items():
        for (name, _), gradient in zip(model.heads[task].named_parameters(), gradients):
            assert torch.equal(ours[f"heads.{task}.{name}"], gradient), (task, name)


@pytest.mark.parametrize("method", ["pcgrad", "upgrad"])
def test_under_fp16_every_gradient_stays_scaled_for_the_loss_scaler(model_and_batches, method):
    """The scaler multiplies the losses (here by 1024); its unscaling must then give back the same step."""
    model, batches = model_and_batches
    gradients = {}
    for scale in (1.0, 1024.0):
        model.zero_grad(set_to_none=True)
        _, weights = aggregate_encoder_gradients(model, batches, make_combiner(method, 2), one_process(scale))
        gradients[scale] = (weights, [p.grad.clone() for p in model.parameters() if p.grad is not None])
    (plain_weights, plain), (scaled_weights, scaled) = gradients[1.0], gradients[1024.0]
    assert torch.allclose(plain_weights, scaled_weights, rtol=1e-4)  # the weights do not depend on the scale
    assert all(torch.allclose(1024 * one, other, rtol=1e-4, atol=1e-9) for one, other in zip(plain, scaled))


# ---------------------------------------------------------------------------------------------
# Short all-tasks runs on real data
# ---------------------------------------------------------------------------------------------


def all_tasks_config(tiny_encoder_dir, tweeteval_dir, combine, **changes) -> TrainConfig:
    """Emotion + irony, 64 training tweets each in batches of 8: 8 steps of two batches per epoch."""
    settings = dict(tasks=["emotion", "irony"], model=str(tiny_encoder_dir), strategy="all-tasks",
                    combine=combine, epochs=2, batch_size=8, max_train_examples=64, max_eval_examples=40,
                    max_length=32, data_dir=str(tweeteval_dir))
    return TrainConfig(**{**settings, **changes})


SAMPLING_COLUMNS = ["epoch", "task", "train_loss", "train_examples", "dev_loss", "dev_accuracy",
                    "dev_macro_f1", "dev_macro_recall", "dev_official", "best_so_far", "seconds",
                    "examples_per_second", "tokens_per_second", "pad_fraction", "gradient_cosine"]


@pytest.mark.parametrize("combine", COMBINERS)
def test_a_short_all_tasks_run_of_each_method(tmp_path, tiny_encoder_dir, tweeteval_dir, combine):
    run = fit(all_tasks_config(tiny_encoder_dir, tweeteval_dir, combine), tmp_path / combine, progress=False)
    history = run.history
    assert list(history.columns) == SAMPLING_COLUMNS + ["weight"]
    assert history["train_examples"].tolist() == [64] * 4  # a batch of every task at every step: a pass each
    assert history[["train_loss", "dev_loss", "weight"]].map(math.isfinite).all().all()
    weights = history.pivot(index="epoch", columns="task", values="weight")
    if combine == "equal":
        assert (weights == 1).all().all()
    elif combine == "uncertainty":  # emotion's 4-class loss (~1.39) is above irony's 2-class one (~0.69)
        assert (weights["emotion"] < 1).all() and (weights["irony"] > 1).all()
    elif combine == "mgda":  # a convex combination: the weights add up to 1 at every step
        assert weights.sum(axis=1).tolist() == pytest.approx([1.0, 1.0])
    elif combine == "pcgrad":  # each task's own gradient (1), plus what the projections added (>= 0)
        assert (weights >= 1).all().all()
    else:
        assert (weights > 0).all().all()
    assert set(run.results) == {"emotion", "irony"}


@pytest.fixture
def fresh_accelerate_state():
    """Accelerate keeps one precision per process: start this test afresh, and leave none behind."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("combine", ["uncertainty", "upgrad"])
def test_an_all_tasks_run_in_bf16_runs_the_model_in_bf16(tmp_path, tiny_encoder_dir, tweeteval_dir, combine,
                                                         monkeypatch, fresh_accelerate_state):
    dtypes, forward = set(), MultiTaskModel.forward

    def recording_forward(self, input_ids, attention_mask, task, *labels_and_reduction):
        output = forward(self, input_ids, attention_mask, task, *labels_and_reduction)
        if self.training:
            dtypes.add((output[0] if labels_and_reduction else output).dtype)
        return output

    monkeypatch.setattr(MultiTaskModel, "forward", recording_forward)
    config = all_tasks_config(tiny_encoder_dir, tweeteval_dir, combine, epochs=1, mixed_precision="bf16")
    history = fit(config, tmp_path / combine, progress=False).history
    assert dtypes == {torch.bfloat16}
    assert history[["train_loss", "dev_loss", "weight"]].map(math.isfinite).all().all()


def comparable(history: pd.DataFrame) -> pd.DataFrame:
    """A history without its clock readings: all else must repeat exactly."""
    return history.drop(columns=["seconds", "examples_per_second", "tokens_per_second"])


class Crash(Exception):
    pass


def crash_after_epoch(epoch: int):
    def on_epoch_end(history):
        if history["epoch"].max() == epoch:
            raise Crash
    return on_epoch_end


def test_uncertainty_weighting_resumes_to_the_same_run(tmp_path, tiny_encoder_dir, tweeteval_dir):
    config = all_tasks_config(tiny_encoder_dir, tweeteval_dir, "uncertainty", epochs=3)
    whole = fit(config, tmp_path / "whole", progress=False)
    with pytest.raises(Crash):
        fit(config, tmp_path / "resumed", progress=False, on_epoch_end=crash_after_epoch(1))
    saved = torch.load(tmp_path / "resumed" / "last" / STATE_FILE, weights_only=True)
    assert saved["combiner"]["log_variances"].abs().min() > 0  # the learned weights are in the checkpoint
    resumed = fit(config, tmp_path / "resumed", resume=True, progress=False)
    pd.testing.assert_frame_equal(comparable(resumed.history), comparable(whole.history))
    assert resumed.results == whole.results


@pytest.mark.parametrize("changes, message", [
    (dict(combine="pcgrad"), "combine='pcgrad' needs strategy='all-tasks'"),
    (dict(strategy="all-tasks", sampler="adaptive"), "sampler='adaptive' needs strategy='sample'"),
    (dict(strategy="all-tasks", combine="gradnorm"), "unknown combine 'gradnorm': choose one of equal, unc"),
    (dict(strategy="each-task"), "unknown strategy 'each-task': choose one of sample, all-tasks"),
    (dict(target_scores={"emotion": 0.76}), "target_scores are for sampler='adaptive', not 'proportional'"),
    (dict(sampler="adaptive", target_scores={"emotion": 76.3}), "between 0 and 1"),
])
def test_settings_the_strategy_cannot_use_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)
    assert TrainConfig(strategy="all-tasks").combine == "equal"


def test_the_command_line_refuses_a_combination_with_a_clear_message(tmp_path, tweeteval_dir, capsys):
    folder = tmp_path / "run"
    assert main(["train", "--sampler", "adaptive", "--target-scores", "emotion=0.7", "hate=0.5",
                 "--data-dir", str(tweeteval_dir), "--out", str(folder)]) == 2
    assert "target_scores name tasks this run does not train: ['hate']" in capsys.readouterr().err
    assert main(["train", "--combine", "upgrad", "--data-dir", str(tweeteval_dir), "--out", str(folder)]) == 2
    assert "combine='upgrad' needs strategy='all-tasks' (--strategy all-tasks)" in capsys.readouterr().err
    assert not folder.exists()


def test_plots_draw_each_tasks_weight_and_sampling_probability_per_epoch():
    from mtl_tutorial import plots

    history = pd.DataFrame({"epoch": [1, 1, 2, 2], "task": ["emotion", "sentiment"] * 2,
                            "weight": [0.9, 1.1, 0.8, 1.3], "sampling_probability": [0.3, 0.7, 0.6, 0.4]})
    drawn = {"weight": plots.task_weights(history), "sampling_probability": plots.sampling_by_epoch(history)}
    for column, figure in drawn.items():
        lines = figure.axes[0].get_lines()
        assert [line.get_label() for line in lines] == ["emotion", "sentiment"]
        assert list(lines[1].get_ydata()) == history.loc[history["task"] == "sentiment", column].tolist()
    with pytest.raises(KeyError, match="this history has no 'weight' column"):
        plots.task_weights(history.drop(columns="weight"))


# ---------------------------------------------------------------------------------------------
# Several processes: the per-task gradients are averaged before they are combined
# ---------------------------------------------------------------------------------------------

# Run by each process: the command line's `train` with every dropout off, so that two processes on half
# batches and one process on whole batches must take the same steps.
TRAIN_WITHOUT_DROPOUT = """
import sys
import torch
from mtl_tutorial.cli import main

torch.nn.Dropout.forward = lambda self, x: x
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def encoder_without_dropout(tmp_path_factory):
    return save_tiny_encoder(tmp_path_factory.mktemp("tiny-bert-no-dropout"), seed=0, dropout=0.0)


def torchrun_train(work, processes: int, batch_size: int, combine: str, encoder, tweeteval_dir):
    script = work / "train_without_dropout.py"
    script.write_text(TRAIN_WITHOUT_DROPOUT)
    folder = work / f"{combine}-{processes}"
    launch = [sys.executable]  # one process as a user starts it; several through torchrun
    if processes > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    train = ["train", "--tasks", "emotion", "irony", "--model", str(encoder), "--strategy", "all-tasks",
             "--combine", combine, "--epochs", "1", "--batch-size", str(batch_size),
             "--max-train-examples", "64", "--max-eval-examples", "40", "--max-length", "32",
             "--data-dir", str(tweeteval_dir), "--out", str(folder)]
    command = [*launch, str(script), *train]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                   "TOKENIZERS_PARALLELISM": "false"}
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert finished.returncode == 0, finished.stderr[-4000:]
    return folder


@pytest.mark.slow  # torchrun, twice
@pytest.mark.parametrize("combine", ["upgrad", "uncertainty"])
def test_two_processes_on_half_batches_take_the_steps_of_one_process(tmp_path, encoder_without_dropout,
                                                                     tweeteval_dir, combine):
    # 2 processes x 8 tweets per task and step, then the same 16 tweets in one process
    two = torchrun_train(tmp_path, 2, 8, combine, encoder_without_dropout, tweeteval_dir)
    one = torchrun_train(tmp_path, 1, 16, combine, encoder_without_dropout, tweeteval_dir)
    for weights in ("model.safetensors", "heads.safetensors"):
        mine, reference = load_file(two / "last" / weights), load_file(one / "last" / weights)
        assert mine.keys() == reference.keys()
        for name in reference:
            assert torch.allclose(mine[name], reference[name], atol=2e-5), (weights, name)
    history = {folder: json.loads((folder / "history.json").read_text()) for folder in (two, one)}
    weights = {folder: [row["weight"] for row in rows] for folder, rows in history.items()}
    assert weights[two] == pytest.approx(weights[one], abs=1e-5)


def test_combined_steps_are_each_methods_step_for_two_gradients():
    from mtl_tutorial.combine import combined_steps

    agree, conflict = (torch.tensor([2.0, 1.0]), torch.tensor([1.0, 3.0])), (torch.tensor([4.0, 0.0]),
                                                                             torch.tensor([-2.0, 1.0]))
    steps = combined_steps(*agree)
    assert torch.equal(steps["equal"], agree[0] + agree[1])
    assert torch.allclose(steps["pcgrad"], steps["equal"])
    assert torch.allclose(steps["upgrad"], steps["equal"] / 2)  # agreeing gradients: UPGrad is the mean
    steps = combined_steps(*conflict)
    assert list(steps) == ["equal", "pcgrad", "mgda", "upgrad"]
    assert steps["equal"] @ conflict[1] < 0  # the plain sum works against the second task
    assert torch.allclose(steps["pcgrad"], pcgrad_pair(*conflict))
    assert torch.allclose(steps["mgda"], mgda_pair(*conflict), atol=1e-4)
    for method in ("pcgrad", "mgda", "upgrad"):
        assert min(steps[method] @ conflict[0], steps[method] @ conflict[1]) >= -1e-5, method
