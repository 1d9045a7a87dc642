"""What a job needs of the RL loop beyond training: log lines for its events, and bf16 autocast that leaves CPU
runs exactly as they were."""

import contextlib

import pytest
import torch

from rl_trainer.trainer import RLTrainer
from tests.rl_trainer.rl_standin import GaussianStepPolicy, GaussianStepSampling, brightness, make_inputs
from tests.rl_trainer.test_rl_training import config, darkness_evaluator, run

TIMING = ("samples_per_s", "sampling_samples_per_s", "step_seconds")


def test_a_cancelled_run_logs_its_cancel_its_resume_and_its_end(tmp_path):
    cfg = config(max_steps=4, checkpoint_every=4, eval_every=2)
    lines: list[str] = []
    calls = iter(range(100))
    run(tmp_path, cfg, should_stop=lambda: next(calls) >= 1, on_log=lines.append)
    assert lines == ["cancelled after 1 steps; rerun to resume from the checkpoint"]
    lines.clear()
    run(tmp_path, cfg, on_log=lines.append)
    assert lines == ["resumed from checkpoint at step 1 of 4", "trained 4 steps"]
    lines.clear()
    run(tmp_path, cfg, on_log=lines.append)
    assert lines == [f"{tmp_path} holds a finished run (4 steps, completed): not training again"]


def test_the_hacking_guard_stop_is_logged(tmp_path):
    cfg = config(max_steps=12, eval_every=1, hacking_patience=2, kl_weight=0.0)
    lines: list[str] = []
    result, _, _ = run(tmp_path, cfg, held_out=darkness_evaluator(), on_log=lines.append)
    assert lines == [result.message] and "held-out darkness fell for 2 evaluations" in lines[0]


@pytest.mark.parametrize("update", ["ddpo", "reward_backprop"])
def test_bf16_autocast_changes_nothing_on_the_cpu(tmp_path, update):
    results = {}
    for flag in (True, False):
        cfg = config(policy_update=update, max_steps=3, eval_every=2, bf16_autocast=flag)
        result, policy, _ = run(tmp_path / str(flag), cfg)
        history = [{k: v for k, v in row.items() if k not in TIMING} for row in result.history]
        results[flag] = (policy.state_dict(), history, result.evaluations)
    (on_state, on_history, on_evaluations), (off_state, off_history, off_evaluations) = results.values()
    assert all(torch.equal(on_state[name], off_state[name]) for name in off_state)
    assert on_history == off_history and on_evaluations == off_evaluations


def test_autocast_is_only_entered_for_a_policy_on_cuda():
    trainer = RLTrainer(
        config(bf16_autocast=True),
        GaussianStepPolicy(),
        GaussianStepPolicy(),
        brightness,
        train_inputs=make_inputs(4),
        sampler=GaussianStepSampling(),
    )
    assert not trainer.bf16 and isinstance(trainer.forward_precision(), contextlib.nullcontext)
