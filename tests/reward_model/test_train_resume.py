"""A job's view of reward training: progress reports, a stop on request, and a resume that changes nothing."""

import dataclasses
import itertools
import json

import torch

from reward_model.data import ImageBank
from reward_model.model import RewardConfig
from reward_model.train import TrainConfig, train
from tests.reward_model.toy import oracle_rows

CONFIG = TrainConfig(
    reward=RewardConfig(
        resolution=16, channels=(8, 16), ensemble_size=2, residual_input=True, group_norm=True
    ),
    max_steps=20,
    batch_size=8,
    learning_rate=3e-3,
    eval_every=5,
    checkpoint_every=3,
    patience=10,
    val_fraction=0.2,
)
ARTIFACT_FILES = ("config.json", "model.safetensors", "metrics.json")


def _data(toy_data, toy_oracle_factory):
    rows = oracle_rows(
        toy_data,
        {"a": toy_oracle_factory("reliable", 1), "b": toy_oracle_factory("noisy", 2)},
        judgments_per_annotator=60,
    )
    return rows, ImageBank(toy_data.images, resolution=16)


def _stop_before_step(k: int):
    calls = itertools.count()
    return lambda: next(calls) >= k  # the (k+1)-th check comes before step k+1


def test_a_run_stopped_and_resumed_ends_with_the_model_of_an_uninterrupted_run(
    tmp_path, toy_data, toy_oracle_factory
):
    rows, bank = _data(toy_data, toy_oracle_factory)
    reports = []

    def on_progress(step, total, metrics):
        # the checkpoint is on disk by the time a step is reported
        saved = json.loads((tmp_path / "whole" / "checkpoint" / "progress.json").read_text())
        reports.append((step, total, saved["step"], metrics))

    whole = train(
        CONFIG,
        judgments=rows,
        images=bank,
        out_dir=tmp_path / "whole",
        progress=False,
        on_progress=on_progress,
    )
    assert [step for step, *_ in reports] == [3, 5, 6, 9, 10, 12, 15, 18, 20, 20]
    assert all(total == 20 and saved == step for step, total, saved, _ in reports)
    assert "val_pairwise_accuracy" in reports[1][3] and "loss" in reports[0][3]
    assert reports[-1][3]["steps"] == 20.0 and reports[-1][3]["val_pairwise_accuracy"] is not None

    lines: list[str] = []
    stopped = train(
        CONFIG,
        judgments=rows,
        images=bank,
        out_dir=tmp_path / "split",
        progress=False,
        should_stop=_stop_before_step(7),
        on_log=lines.append,
    )
    assert stopped.stopped and stopped.metrics == {"steps": 7, "max_steps": 20, "stopped": True}
    assert not any((tmp_path / "split" / name).exists() for name in ARTIFACT_FILES)
    assert json.loads((tmp_path / "split" / "checkpoint" / "progress.json").read_text())["step"] == 7
    assert lines == ["stopped on request at step 7 of 20; rerun to resume from the checkpoint"]

    lines.clear()
    resumed = train(
        CONFIG, judgments=rows, images=bank, out_dir=tmp_path / "split", progress=False, on_log=lines.append
    )
    assert not resumed.stopped
    assert lines == ["resumed from checkpoint at step 7 of 20"]
    whole_state, resumed_state = whole.model.state_dict(), resumed.model.state_dict()
    assert whole_state.keys() == resumed_state.keys()
    for name in whole_state:
        assert torch.equal(whole_state[name], resumed_state[name]), name
    timing = "train_seconds_this_run"
    assert {k: v for k, v in resumed.metrics.items() if k != timing} == {
        k: v for k, v in whole.metrics.items() if k != timing
    }
    assert resumed.reliability == whole.reliability
    assert all((tmp_path / "split" / name).is_file() for name in ARTIFACT_FILES)


def test_a_checkpoint_save_killed_between_its_renames_still_resumes(tmp_path, toy_data, toy_oracle_factory):
    rows, bank = _data(toy_data, toy_oracle_factory)
    config = dataclasses.replace(CONFIG, max_steps=6)
    train(
        config,
        judgments=rows,
        images=bank,
        out_dir=tmp_path,
        progress=False,
        should_stop=_stop_before_step(4),
    )
    # a save killed after moving the last checkpoint aside, before moving the new one in
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.previous")
    lines: list[str] = []
    result = train(config, judgments=rows, images=bank, out_dir=tmp_path, progress=False, on_log=lines.append)
    assert lines == ["resumed from checkpoint at step 4 of 6"] and result.metrics["steps"] == 6


def test_early_stopping_is_logged(toy_data, toy_oracle_factory):
    rows, bank = _data(toy_data, toy_oracle_factory)
    frozen = dataclasses.replace(
        CONFIG, learning_rate=0.0, reliability_learning_rate=0.0, eval_every=2, patience=2, max_steps=50
    )
    lines: list[str] = []
    result = train(frozen, judgments=rows, images=bank, progress=False, on_log=lines.append)
    assert result.metrics["stopped_early"]
    assert lines == [
        "stopped early at step 6: validation accuracy has not improved for 2 evaluations; "
        "keeping the model of step 2"
    ]
