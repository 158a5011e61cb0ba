"""A setting whose optional package is missing stops the run before its first step, in one line."""

import sys

import pytest

from mtl_tutorial.cli import main
from mtl_tutorial.config import TrainConfig
from mtl_tutorial.dependencies import REQUIREMENTS, MissingPackage, check_requirements
from mtl_tutorial.train import fit


@pytest.fixture
def without_quadprog(monkeypatch):
    """quadprog as if it were not installed: a None entry in sys.modules makes it unimportable."""
    monkeypatch.setitem(sys.modules, "quadprog", None)


def test_every_required_module_is_installed_here():
    # the package's own dependencies include every optional module the tables name
    for requirement in REQUIREMENTS:
        check_requirements(TrainConfig(strategy="all-tasks", **{requirement.setting: requirement.value}))


def test_upgrad_without_its_solver_stops_the_command_line_in_one_line(without_quadprog, tmp_path, capsys,
                                                                      tiny_encoder_dir, tweeteval_dir):
    folder = tmp_path / "run"
    status = main(["train", "--tasks", "emotion", "sentiment", "--strategy", "all-tasks",
                   "--combine", "upgrad", "--model", str(tiny_encoder_dir), "--epochs", "1",
                   "--max-train-examples", "32",
                   "--data-dir", str(tweeteval_dir), "--out", str(folder)])
    error = capsys.readouterr().err
    assert status == 2
    assert error.splitlines() == ["mtl-tutorial train: error: combine='upgrad' needs quadprog, which is not "
                                  'installed: run  pip install "torchjd[quadprog-projector]"']
    assert not folder.exists()  # stopped before anything was written


def test_fit_raises_before_it_touches_the_folder_and_notebooks_show_one_line(without_quadprog, tmp_path):
    config = TrainConfig(tasks=["emotion", "sentiment"], strategy="all-tasks", combine="upgrad")
    with pytest.raises(MissingPackage) as raised:
        fit(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert raised.value._render_traceback_() == [f"MissingPackage: {raised.value}"]


def test_settings_that_need_nothing_more_are_not_checked(without_quadprog):
    for combine in ("equal", "uncertainty", "pcgrad", "mgda"):
        check_requirements(TrainConfig(strategy="all-tasks", combine=combine))
