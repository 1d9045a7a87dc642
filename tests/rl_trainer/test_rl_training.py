"""The RL loop on the stand-in Gaussian-step policy: planted rewards, KL, resume, the reward-hacking stop."""

import copy

import pytest
import torch

from rl_trainer.checkpoints import CheckpointError, complete_checkpoints
from rl_trainer.config import RLConfig
from rl_trainer.guard import HeldOutEvaluator, win_rate
from rl_trainer.rewards import RewardNotDifferentiableError
from rl_trainer.train import (
    STOP_CANCELLED,
    STOP_COMPLETED,
    STOP_FIDELITY_BUDGET,
    STOP_REWARD_HACKING,
    STOP_TIME_BUDGET,
    train_policy,
)
from rl_trainer.trainer import RLTrainer
from tests.rl_trainer.rl_standin import (
    GaussianStepPolicy,
    GaussianStepSampling,
    HesitantStepPolicy,
    LogProbOnlySampling,
    brightness,
    make_inputs,
)


def config(**overrides) -> RLConfig:
    values = {"consistency_weight": 0.0, "entropy_seeds": 0, "clip_range": 0.2, "learning_rate": 3e-2}
    values.update(overrides)
    return RLConfig.preset("test", **values)


def run(tmp_path, cfg, *, reward_fn=brightness, sampling=None, held_out=None, policy=None, **kwargs):
    policy = policy if policy is not None else GaussianStepPolicy()
    reference = copy.deepcopy(policy)
    result = train_policy(
        cfg,
        policy=policy,
        reference=reference,
        reward_fn=reward_fn,
        train_inputs=make_inputs(6),
        eval_inputs=make_inputs(2, seed=1),
        out_dir=tmp_path,
        sampler=sampling or GaussianStepSampling(),
        held_out=held_out,
        progress_bar=False,
        **kwargs,
    )
    return result, policy, reference


def crash_at_step(crash_step: int):
    """An on_progress callback that crashes the run when it reaches ``crash_step``."""

    def crash(step, total, metrics):
        if step == crash_step:
            raise RuntimeError("simulated crash")

    return crash


def recorder(policy) -> tuple[dict[int, dict], object]:
    """The policy's weights after every step, and the on_progress callback that keeps them."""
    at_step: dict[int, dict] = {}

    def remember(step, total, metrics):
        at_step[step] = {name: value.detach().clone() for name, value in policy.state_dict().items()}

    return at_step, remember


def distance(policy, reference) -> float:
    return (
        sum(float((a - b).detach().pow(2).sum()) for a, b in zip(policy.parameters(), reference.parameters()))
        ** 0.5
    )


@pytest.mark.parametrize("timestep_fraction", [1.0, 0.5])
def test_a_planted_brightness_reward_rises(tmp_path, timestep_fraction):
    cfg = config(max_steps=6, kl_weight=0.0, eval_every=3, train_timestep_fraction=timestep_fraction)
    result, policy, reference = run(tmp_path, cfg)
    rewards = [evaluation["eval/learned_reward"] for evaluation in result.evaluations]
    assert result.stop_reason == STOP_COMPLETED and result.steps == 6
    assert rewards[-1] > rewards[0] + 0.05
    assert float(policy.bias.detach().mean()) > float(reference.bias.detach().mean())
    assert result.rollouts == 6 * 2 * 4


def test_reward_backprop_raises_a_planted_reward_by_its_gradient(tmp_path):
    cfg = config(policy_update="reward_backprop", max_steps=6, kl_weight=0.0, eval_every=3)
    result, policy, reference = run(tmp_path, cfg)
    rewards = [evaluation["eval/learned_reward"] for evaluation in result.evaluations]
    assert result.stop_reason == STOP_COMPLETED and result.steps == 6
    assert rewards[-1] > rewards[0] + 0.05
    # brightness rises with the bias and the gain on the (mostly positive-mean) LQ; the gradient found the bias
    assert float(policy.bias.detach().mean()) > float(reference.bias.detach().mean())
    assert "loss/reward" in result.history[-1] and "reward/learned" in result.history[-1]


def test_reward_backprop_refuses_a_reward_without_a_gradient(tmp_path):
    def scores_only(lq, images):
        with torch.no_grad():
            return images.mean(dim=(1, 2, 3))

    cfg = config(policy_update="reward_backprop", max_steps=2)
    with pytest.raises(RewardNotDifferentiableError, match="no gradient"):
        run(tmp_path, cfg, reward_fn=scores_only)


def test_reward_backprop_needs_a_sampler_that_recomputes_its_images(tmp_path):
    class NoFinalImages(GaussianStepSampling):
        final_images = None

    cfg = config(policy_update="reward_backprop", max_steps=2)
    with pytest.raises(TypeError, match="final_images"):
        run(tmp_path, cfg, sampling=NoFinalImages())


def test_the_fallback_sampled_kl_also_raises_the_reward(tmp_path):
    result, _, _ = run(tmp_path, config(max_steps=6, eval_every=3), sampling=LogProbOnlySampling())
    rewards = [evaluation["eval/learned_reward"] for evaluation in result.evaluations]
    assert rewards[-1] > rewards[0] + 0.05


@pytest.mark.parametrize("update", ["ddpo", "reward_backprop"])
def test_the_agreement_reward_makes_samples_less_dependent_on_the_seed(tmp_path, update):
    # no learned reward at all: only agreement with the other samples of the group
    cfg = config(
        policy_update=update,
        max_steps=8,
        kl_weight=0.0,
        learned_reward_weight=0.0,
        agreement_weight=1.0,
        entropy_seeds=4,
        eval_every=8,
    )

    def indifferent(lq, images):
        return torch.zeros(images.shape[0])

    result, policy, reference = run(tmp_path, cfg, reward_fn=indifferent, policy=HesitantStepPolicy())
    assert float(torch.sigmoid(policy.reach.detach())) > float(torch.sigmoid(reference.reach.detach())) + 0.05
    assert result.entropy_after < 0.8 * result.entropy_before
    assert "reward/agreement" in result.history[-1]


@pytest.mark.parametrize("update", ["ddpo", "reward_backprop"])
def test_a_large_kl_weight_holds_the_policy_near_the_reference(tmp_path, update):
    free, free_policy, free_reference = run(
        tmp_path / "free", config(policy_update=update, max_steps=6, kl_weight=0.0)
    )
    held, held_policy, held_reference = run(
        tmp_path / "held", config(policy_update=update, max_steps=6, kl_weight=1e4)
    )
    assert distance(held_policy, held_reference) < 0.3 * distance(free_policy, free_reference)
    assert held.history[-1]["kl"] < 0.1 * free.history[-1]["kl"]


@pytest.mark.parametrize("update", ["ddpo", "reward_backprop"])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, update):
    cfg = config(policy_update=update, max_steps=4, checkpoint_every=2, eval_every=2)
    straight, straight_policy, _ = run(tmp_path / "straight", cfg)

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "resumed", cfg, on_progress=crash_at_step(3))
    assert [path.name for path in complete_checkpoints(tmp_path / "resumed")] == ["step_000002"]
    resumed, resumed_policy, _ = run(tmp_path / "resumed", cfg)

    for a, b in zip(straight_policy.state_dict().values(), resumed_policy.state_dict().values()):
        assert torch.equal(a, b)
    assert [e["eval/learned_reward"] for e in straight.evaluations] == [
        e["eval/learned_reward"] for e in resumed.evaluations
    ]
    assert [h["reward/total"] for h in straight.history] == [h["reward/total"] for h in resumed.history]


def test_cancel_keeps_a_checkpoint_and_a_rerun_finishes_the_same(tmp_path):
    cfg = config(max_steps=4, checkpoint_every=4, eval_every=2)
    straight, straight_policy, _ = run(tmp_path / "straight", cfg)
    steps_seen = []
    cancelled, _, _ = run(
        tmp_path / "cancelled",
        cfg,
        on_progress=lambda step, total, metrics: steps_seen.append((step, total)),
        should_stop=lambda: len(steps_seen) >= 1,
    )
    assert cancelled.stop_reason == STOP_CANCELLED and cancelled.steps == 1
    assert steps_seen == [(1, 4)]
    finished, finished_policy, _ = run(tmp_path / "cancelled", cfg)
    assert finished.steps == 4
    assert torch.equal(straight_policy.bias, finished_policy.bias)


def test_resuming_with_another_config_is_refused(tmp_path):
    run(tmp_path, config(max_steps=2, checkpoint_every=2))
    with pytest.raises(CheckpointError, match="another RLConfig"):
        run(tmp_path, config(max_steps=4, checkpoint_every=2))


def darkness_evaluator() -> HeldOutEvaluator:
    return HeldOutEvaluator(name="darkness", score=lambda lq, images, hq, params: -images.mean(dim=(1, 2, 3)))


@pytest.mark.parametrize("eval_entropy_seeds", [0, 2])
def test_the_hacking_guard_stops_when_the_planted_reward_diverges_from_the_held_out_evaluator(
    tmp_path, eval_entropy_seeds
):
    # the guard watches every evaluation, whether or not evaluations also measure solution entropy
    cfg = config(
        max_steps=12,
        eval_every=1,
        hacking_patience=2,
        kl_weight=0.0,
        eval_entropy_seeds=eval_entropy_seeds,
    )
    result, policy, _ = run(tmp_path, cfg, held_out=darkness_evaluator())
    assert result.stop_reason == STOP_REWARD_HACKING and result.stopped_early
    assert result.steps < 12
    assert "held-out darkness fell for 2 evaluations" in result.message
    # the policy handed back is the one from before the divergence
    assert result.rolled_back_to_step == result.steps - 2
    learned = [e["eval/learned_reward"] for e in result.evaluations]
    assert learned[-1] > learned[-3]


def test_with_the_divergence_rule_off_a_fidelity_budget_alone_decides_where_the_run_ends(tmp_path):
    # the same steady divergence as above, read as fidelity in dB: preference RL trades fidelity for what the
    # reward model prefers, and with patience 0 only the budget may stop that trade
    settings = {"max_steps": 8, "eval_every": 1, "kl_weight": 0.0, "held_out_evaluator": "fidelity"}
    hacked, _, _ = run(
        tmp_path / "rule",
        config(**settings, hacking_patience=2, fidelity_budget_db=1e3),
        held_out=darkness_evaluator(),
    )
    assert hacked.stop_reason == STOP_REWARD_HACKING and hacked.rolled_back_to_step == hacked.steps - 2
    drops = [hacked.evaluations[0]["eval/held_out"] - e["eval/held_out"] for e in hacked.evaluations]

    traded, _, _ = run(
        tmp_path / "off",
        config(**settings, hacking_patience=0, fidelity_budget_db=1e3),
        held_out=darkness_evaluator(),
    )
    assert traded.stop_reason == STOP_COMPLETED and traded.steps == 8
    assert all(e["eval/hacking_streak"] >= 0 for e in traded.evaluations)

    budget = (drops[-1] + drops[-2]) / 2  # between the drops of the hacked run's last two evaluations
    stopped, _, _ = run(
        tmp_path / "budget",
        config(**settings, hacking_patience=0, fidelity_budget_db=budget),
        held_out=darkness_evaluator(),
    )
    assert stopped.stop_reason == STOP_FIDELITY_BUDGET
    assert stopped.steps == hacked.steps and stopped.rolled_back_to_step == hacked.steps - 1


def test_keep_best_hands_back_the_step_the_held_out_evaluator_liked_best(tmp_path):
    # brightness climbs, darkness (held out) falls from the first step; the guard is kept quiet on purpose
    cfg = config(max_steps=6, eval_every=2, hacking_patience=100, keep_best=True)
    result, policy, reference = run(tmp_path / "diverging", cfg, held_out=darkness_evaluator())
    assert result.stop_reason == STOP_COMPLETED
    assert result.evaluations[0]["eval/held_out_win"] == 0.5  # the reference against itself: all ties
    assert all(e["eval/held_out_win"] < 0.5 for e in result.evaluations[1:])
    assert result.selected_step == 0
    assert "kept the policy of step 0" in result.message
    assert distance(policy, reference) == 0.0

    # without keep_best the same run hands back its last policy
    _, last_policy, last_reference = run(
        tmp_path / "last",
        config(max_steps=6, eval_every=2, hacking_patience=100),
        held_out=darkness_evaluator(),
    )
    assert distance(last_policy, last_reference) > 0.0

    agreeing = HeldOutEvaluator(
        name="brightness", score=lambda lq, images, hq, params: brightness(lq, images)
    )
    improving, improved_policy, improved_reference = run(tmp_path / "agreeing", cfg, held_out=agreeing)
    # ranked by win rate, then by the mean held-out score
    keys = [(e["eval/held_out_win"], e["eval/held_out"]) for e in improving.evaluations]
    assert improving.selected_step == 2 * keys.index(max(keys)) > 0
    assert distance(improved_policy, improved_reference) > 0.0


def test_a_fidelity_budget_ends_the_run_and_hands_back_the_last_evaluation_within_it(tmp_path):
    # brightness climbs and the held-out darkness falls step after step (the guard is kept quiet on purpose):
    # the budget sits between the drops of two evaluations, so the run must stop at the later one
    settings = {"max_steps": 8, "eval_every": 2, "hacking_patience": 100, "held_out_evaluator": "fidelity"}
    free, _, _ = run(tmp_path / "free", config(**settings), held_out=darkness_evaluator())
    drops = [free.evaluations[0]["eval/held_out"] - e["eval/held_out"] for e in free.evaluations]
    assert all(later > earlier for earlier, later in zip(drops, drops[1:]))
    budget = (drops[2] + drops[3]) / 2  # steps 4 and 6

    policy = GaussianStepPolicy()
    at_step, remember = recorder(policy)
    written = {}
    result, _, reference = run(
        tmp_path / "budget",
        config(**settings, fidelity_budget_db=budget),
        held_out=darkness_evaluator(),
        policy=policy,
        on_progress=remember,
        write_artifact=lambda trained, out_dir, metrics: written.update(metrics),
    )
    assert result.stop_reason == STOP_FIDELITY_BUDGET and not result.stopped_early
    assert result.steps == 6 and result.rolled_back_to_step == 4
    assert f"past the {budget:g} dB budget; kept the policy of step 4" in result.message
    for name, value in policy.state_dict().items():
        assert torch.equal(value, at_step[4][name])
    assert distance(policy, reference) > 0.0
    # the policy handed back is the run's result: its artifact is written as for a completed run
    assert written["stop_reason"] == STOP_FIDELITY_BUDGET and written["rolled_back_to_step"] == 4


def test_a_budget_per_face_ends_the_run_where_one_face_falls_past_it(tmp_path):
    # as above, but the budget is on the one face that fell most: it sits between the worst faces' drops of two
    # evaluations, with a mean budget that is never reached, so only the per-face budget can stop the run
    settings = {"max_steps": 8, "eval_every": 2, "hacking_patience": 100, "held_out_evaluator": "fidelity"}
    free, _, _ = run(tmp_path / "free", config(**settings), held_out=darkness_evaluator())
    worst = [e["eval/held_out_worst_drop"] for e in free.evaluations]
    mean = [free.evaluations[0]["eval/held_out"] - e["eval/held_out"] for e in free.evaluations]
    assert worst[0] == 0.0 and all(later > earlier for earlier, later in zip(worst, worst[1:]))
    assert all(w >= m for w, m in zip(worst, mean))  # one face falls at least as far as the mean
    face_budget = (worst[2] + worst[3]) / 2  # steps 4 and 6
    result, _, _ = run(
        tmp_path / "face",
        config(**settings, fidelity_face_budget_db=face_budget, fidelity_budget_db=10 * mean[-1] + 1.0),
        held_out=darkness_evaluator(),
    )
    assert result.stop_reason == STOP_FIDELITY_BUDGET
    assert result.steps == 6 and result.rolled_back_to_step == 4
    assert f"past the {face_budget:g} dB budget per face; kept the policy of step 4" in result.message


def a_face_far_above_the_ceiling() -> HeldOutEvaluator:
    """Scores like dB: the first evaluation face far above 40 and a thousand times as sensitive to brightness as
    the second, which sits at 30."""

    def score(lq, images, hq, params):
        darkness = -images.mean(dim=(1, 2, 3))
        sensitivity = torch.ones_like(darkness)
        sensitivity[0] = 1000.0
        offset = torch.full_like(darkness, 30.0)
        offset[0] = 1000.0
        return offset + sensitivity * darkness

    return HeldOutEvaluator(name="fidelity-like", score=score)


def test_the_budget_per_face_counts_a_psnr_above_its_ceiling_as_the_ceiling(tmp_path):
    # the first face falls a thousand times as far as the second but stays far above 40 dB: only without the
    # ceiling does it stop the run, at its first evaluation, handing back step 0
    settings = {
        "max_steps": 6,
        "eval_every": 2,
        "hacking_patience": 100,
        "held_out_evaluator": "fidelity",
        "fidelity_face_budget_db": 0.5,
    }
    without, _, _ = run(tmp_path / "without", config(**settings), held_out=a_face_far_above_the_ceiling())
    assert without.stop_reason == STOP_FIDELITY_BUDGET and without.rolled_back_to_step == 0
    assert without.evaluations[1]["eval/held_out_worst_drop"] > 0.5
    assert "counted as that" not in without.message
    capped, _, _ = run(
        tmp_path / "capped",
        config(**settings, fidelity_face_ceiling_db=40.0),
        held_out=a_face_far_above_the_ceiling(),
    )
    assert capped.stop_reason == STOP_COMPLETED and capped.steps == 6
    drops = [e["eval/held_out_worst_drop"] for e in capped.evaluations]
    assert 0.0 < max(drops) < 0.5  # the second face's fall, which the first one's no longer hides
    # a budget below that fall stops the capped run, and the message says how faces were counted
    tight, _, _ = run(
        tmp_path / "tight",
        config(**{**settings, "fidelity_face_budget_db": max(drops) / 2}, fidelity_face_ceiling_db=40.0),
        held_out=a_face_far_above_the_ceiling(),
    )
    assert tight.stop_reason == STOP_FIDELITY_BUDGET
    assert "budget per face (PSNR above 40 dB counted as that)" in tight.message


def test_a_run_past_its_budget_goes_back_and_on_with_smaller_steps(tmp_path):
    # the budget is below the drop of the first evaluation after step 0: without backing off the run hands back
    # step 0, a copy; backing off it goes on from step 0 at a fifth of the learning rate (the stand-in's first
    # steps move little, its later ones much) and hands back the last evaluation within the budget, which moved
    settings = {"max_steps": 16, "eval_every": 4, "hacking_patience": 100, "held_out_evaluator": "fidelity"}
    free, _, _ = run(tmp_path / "free", config(**settings), held_out=darkness_evaluator())
    drops = [free.evaluations[0]["eval/held_out"] - e["eval/held_out"] for e in free.evaluations]
    budget = 0.75 * drops[1]  # step 4
    stuck, stuck_policy, stuck_reference = run(
        tmp_path / "stuck", config(**settings, fidelity_budget_db=budget), held_out=darkness_evaluator()
    )
    assert stuck.steps == 4 and stuck.rolled_back_to_step == 0 and stuck.backoffs == 0
    assert distance(stuck_policy, stuck_reference) == 0.0

    policy = GaussianStepPolicy()
    at_step, remember = recorder(policy)
    result, _, reference = run(
        tmp_path / "backed_off",
        config(**settings, fidelity_budget_db=budget, fidelity_backoffs=3, fidelity_backoff_factor=0.2),
        held_out=darkness_evaluator(),
        policy=policy,
        on_progress=remember,
    )
    first = result.evaluations[0]["eval/held_out"]
    backed_off = [e for e in result.evaluations if "eval/backed_off" in e]
    assert [int(e["step"]) for e in backed_off][0] == 4 and 1 <= result.backoffs == len(backed_off) <= 3
    assert all(first - e["eval/held_out"] > budget for e in backed_off)
    # the policy handed back is the last evaluation within the budget, and it moved
    kept = [
        e
        for e in result.evaluations[1:]
        if "eval/backed_off" not in e and first - e["eval/held_out"] <= budget
    ]
    assert kept, "no evaluation after step 0 stayed within the budget at the smaller steps"
    kept_step = int(kept[-1]["step"])
    for name, value in policy.state_dict().items():
        assert torch.equal(value, at_step[kept_step][name])
    assert distance(policy, reference) > 0.0
    assert f"went back within the fidelity budgets {result.backoffs} time" in result.message
    if result.stop_reason == STOP_FIDELITY_BUDGET:
        # it used all its back-offs, or crossed the budget at its last step, with none left to go on with
        assert result.backoffs == 3 or "stopped at step 16" in result.message
        assert result.rolled_back_to_step == kept_step


def test_a_run_past_its_budget_at_its_last_step_says_it_handed_back_the_last_policy_within_it(tmp_path):
    # with back-offs left but no step to go on with, the run used to end "completed" (trained 4 steps) while it
    # handed back step 0's policy: the loop then reported a finished run for a candidate that had not moved
    settings = {"max_steps": 4, "eval_every": 4, "hacking_patience": 100, "held_out_evaluator": "fidelity"}
    free, _, _ = run(tmp_path / "free", config(**settings), held_out=darkness_evaluator())
    budget = 0.75 * (free.evaluations[0]["eval/held_out"] - free.evaluations[-1]["eval/held_out"])
    last, policy, reference = run(
        tmp_path / "last",
        config(**settings, fidelity_budget_db=budget, fidelity_backoffs=3),
        held_out=darkness_evaluator(),
    )
    assert last.stop_reason == STOP_FIDELITY_BUDGET and last.rolled_back_to_step == 0
    assert last.steps == 4 and last.backoffs == 0
    assert "stopped at step 4" in last.message and "kept the policy of step 0" in last.message
    assert distance(policy, reference) == 0.0


def test_a_run_that_backed_off_resumes_with_its_smaller_steps(tmp_path):
    # a crash after two back-offs: the resumed run keeps their count, the learning rate and the last policy within
    # the budget, and ends as the uninterrupted run does
    cfg = config(
        max_steps=16,
        eval_every=4,
        checkpoint_every=4,
        hacking_patience=100,
        held_out_evaluator="fidelity",
        fidelity_budget_db=0.032,
        fidelity_backoffs=3,
        fidelity_backoff_factor=0.2,
    )
    straight, straight_policy, _ = run(tmp_path / "straight", cfg, held_out=darkness_evaluator())
    assert [int(e["step"]) for e in straight.evaluations if "eval/backed_off" in e][:2] == [4, 8]

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "resumed", cfg, held_out=darkness_evaluator(), on_progress=crash_at_step(10))
    resumed, resumed_policy, _ = run(tmp_path / "resumed", cfg, held_out=darkness_evaluator())
    assert resumed.backoffs == straight.backoffs and resumed.message == straight.message
    assert resumed.evaluations == straight.evaluations
    for a, b in zip(straight_policy.state_dict().values(), resumed_policy.state_dict().values()):
        assert torch.equal(a, b)


def test_keep_best_can_require_the_determinism_goal(tmp_path):
    # the agreement term alone lowers the hesitant policy's solution entropy step by step
    settings = {
        "max_steps": 8,
        "eval_every": 2,
        "kl_weight": 0.0,
        "learned_reward_weight": 0.0,
        "agreement_weight": 1.0,
        "hacking_patience": 100,
        "keep_best": True,
        "eval_entropy_seeds": 3,
    }

    def indifferent(lq, images):
        return torch.zeros(images.shape[0])

    def best_of(evaluations):
        return int(max(evaluations, key=lambda e: (e["eval/held_out_win"], e["eval/held_out"]))["step"])

    required, _, _ = run(
        tmp_path / "required",
        config(**settings, keep_best_entropy_ratio=0.9),
        reward_fn=indifferent,
        policy=HesitantStepPolicy(),
        held_out=darkness_evaluator(),
    )
    ratios = {int(e["step"]): e["eval/entropy_ratio"] for e in required.evaluations}
    assert ratios[0] == 1.0 and min(ratios.values()) < 0.9
    eligible = [e for e in required.evaluations if e["eval/entropy_ratio"] <= 0.9]
    assert required.selected_step == best_of(eligible)
    assert ratios[required.selected_step] <= 0.9
    assert "among evaluations with solution entropy <= 0.9 x the reference's" in required.message

    # a requirement no evaluation meets: every evaluation competes, and the result says so
    unreachable, _, _ = run(
        tmp_path / "unreachable",
        config(**settings, keep_best_entropy_ratio=1e-6),
        reward_fn=indifferent,
        policy=HesitantStepPolicy(),
        held_out=darkness_evaluator(),
    )
    assert unreachable.selected_step == best_of(unreachable.evaluations)
    assert "no evaluation had solution entropy <= 1e-06" in unreachable.message


def test_keep_best_survives_a_crash_and_resumes_to_the_same_choice(tmp_path):
    cfg = config(max_steps=6, eval_every=2, checkpoint_every=2, hacking_patience=100, keep_best=True)
    straight, straight_policy, _ = run(tmp_path / "straight", cfg, held_out=darkness_evaluator())

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "resumed", cfg, held_out=darkness_evaluator(), on_progress=crash_at_step(5))
    resumed, resumed_policy, _ = run(tmp_path / "resumed", cfg, held_out=darkness_evaluator())
    assert resumed.selected_step == straight.selected_step == 0
    for a, b in zip(straight_policy.state_dict().values(), resumed_policy.state_dict().values()):
        assert torch.equal(a, b)
    assert [e["eval/held_out_win"] for e in straight.evaluations] == [
        e["eval/held_out_win"] for e in resumed.evaluations
    ]


def test_the_guard_stays_quiet_when_the_held_out_evaluator_agrees(tmp_path):
    agreeing = HeldOutEvaluator(
        name="brightness", score=lambda lq, images, hq, params: brightness(lq, images)
    )
    result, _, _ = run(tmp_path, config(max_steps=6, eval_every=1, hacking_patience=2), held_out=agreeing)
    assert result.stop_reason == STOP_COMPLETED
    assert len(result.evaluations) == 7 and all("eval/held_out" in e for e in result.evaluations)


def test_the_artifact_writer_gets_the_policy_and_the_lineage(tmp_path):
    written = {}

    def write_artifact(policy, out_dir, metrics):
        written.update(metrics=metrics, bias=policy.bias.detach().clone())

    result, policy, _ = run(
        tmp_path,
        config(max_steps=2),
        write_artifact=write_artifact,
        lineage={"parent_restorer": "p", "reward_model": "r"},
    )
    assert written["metrics"]["parent_restorer"] == "p" and written["metrics"]["reward_model"] == "r"
    assert written["metrics"]["rl_config"]["max_steps"] == 2
    assert written["metrics"]["stop_reason"] == STOP_COMPLETED
    assert torch.equal(written["bias"], policy.bias)
    assert (tmp_path / "rl_result.json").is_file() and (tmp_path / "rl_config.json").is_file()


def test_lora_trains_only_adapters_and_merges_back_into_plain_layers(tmp_path):
    policy = GaussianStepPolicy()
    seen = {}

    def write_artifact(module, out_dir, metrics):
        seen["keys"] = sorted(module.state_dict())

    result, policy, reference = run(
        tmp_path,
        config(max_steps=3, use_lora=True, lora_rank=2),
        policy=policy,
        write_artifact=write_artifact,
    )
    assert seen["keys"] == sorted(reference.state_dict())  # adapters folded away
    # base layers were frozen: only the LoRA delta moved the 1x1 conv
    assert torch.equal(policy.bias, reference.bias) and torch.equal(policy.gain, reference.gain)
    assert not torch.equal(policy.mix.weight, reference.mix.weight)


def test_the_time_budget_ends_training_normally_with_an_artifact(tmp_path):
    written = []
    result, _, _ = run(
        tmp_path,
        config(max_steps=50, max_minutes=1e-6, eval_every=10),
        write_artifact=lambda policy, out_dir, metrics: written.append(metrics["stop_reason"]),
    )
    assert result.stop_reason == STOP_TIME_BUDGET and not result.stopped_early
    assert result.steps == 1 and written == [STOP_TIME_BUDGET]
    assert result.evaluations[-1]["step"] == 1  # the policy handed back was evaluated


def test_a_finished_run_is_not_trained_again_and_keeps_no_checkpoints(tmp_path):
    first, _, _ = run(tmp_path, config(max_steps=2, checkpoint_every=1))
    assert complete_checkpoints(tmp_path) == []

    def must_not_be_called(lq, images):
        raise AssertionError("a finished run was trained again")

    again, policy, reference = run(
        tmp_path, config(max_steps=2, checkpoint_every=1), reward_fn=must_not_be_called
    )
    assert again.steps == 2 and again.stop_reason == STOP_COMPLETED
    assert again.history == first.history and again.evaluations == first.evaluations
    assert torch.equal(policy.bias, reference.bias)  # nothing trained


def test_evaluate_only_measures_and_the_guard_counts_what_the_loop_feeds_it():
    policy = GaussianStepPolicy()
    trainer = RLTrainer(
        config(),
        policy,
        copy.deepcopy(policy),
        brightness,
        train_inputs=make_inputs(6),
        eval_inputs=make_inputs(2, seed=1),
        sampler=GaussianStepSampling(),
        held_out=darkness_evaluator(),
    )
    before = trainer.guard.state_dict()
    first, second = trainer.evaluate(), trainer.evaluate()
    # two evaluations of the same policy: the same figures, and the guard has not moved
    assert first == second and "eval/hacking_streak" not in first
    assert trainer.guard.state_dict() == before
    fed = trainer.update_guard(first)
    assert fed == {**first, "eval/hacking_streak": 0.0}
    assert trainer.guard.history == [(first["eval/learned_reward"], first["eval/held_out"])]


def test_the_win_rate_counts_ties_half():
    assert win_rate(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 2.0, 5.0, 3.0])) == 0.625
