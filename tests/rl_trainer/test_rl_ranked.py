"""reward_ranked (RAFT with edits as proposals) on the stand-in policy: the reward only ranks, and decides."""

import copy

import pytest
import torch

from restorer.classical import unsharp_mask
from rl_trainer.config import RLConfig, RLConfigError
from rl_trainer.rewards import LearnedReward
from rl_trainer.train import STOP_COMPLETED
from rl_trainer.trainer import RLTrainer
from tests.rl_trainer.rl_standin import (
    GaussianStepPolicy,
    GaussianStepSampling,
    HesitantStepPolicy,
    make_inputs,
)
from tests.rl_trainer.test_rl_training import config, run


def detail(images: torch.Tensor) -> torch.Tensor:
    """High-frequency energy (what an unsharp mask raises), computed without a gradient: only a ranking."""
    with torch.no_grad():
        return (images - unsharp_mask(images, -1.0, sigma=1.0)).pow(2).mean(dim=(1, 2, 3))


def smoothness(lq: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    return -detail(images)


def sharpness(lq: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    return detail(images)


def ranked(**overrides) -> RLConfig:
    values = {"policy_update": "reward_ranked", "max_steps": 6, "kl_weight": 0.0, "eval_every": 3}
    values.update(overrides)
    return config(**values)


def trainer_for(cfg: RLConfig, reward_fn) -> RLTrainer:
    policy = GaussianStepPolicy()
    return RLTrainer(
        cfg,
        policy,
        copy.deepcopy(policy),
        reward_fn,
        train_inputs=make_inputs(6),
        sampler=GaussianStepSampling(),
    )


def test_the_targets_are_each_groups_best_sample_or_edit_and_shared_by_the_group():
    cfg = ranked(ranked_edit_strengths=(-0.5, 0.5, 1.0))
    trainer = trainer_for(cfg, sharpness)
    groups = trainer.train_inputs.select([0, 1]).repeat_each(cfg.group_size)
    images = torch.rand(len(groups), 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1
    targets, chosen = trainer.ranked_targets(groups, images)

    for group in range(2):
        rows = range(group * cfg.group_size, (group + 1) * cfg.group_size)
        candidates = [
            (float(sharpness(None, edited[None])), edited)
            for row in rows
            for strength in (0.0, -0.5, 0.5, 1.0)
            for edited in [unsharp_mask(images[row : row + 1], strength, sigma=1.0).clamp(-1, 1)[0]]
        ]
        best = max(candidates, key=lambda candidate: candidate[0])[1]
        for row in rows:
            assert torch.allclose(targets[row], best, atol=1e-6)
    # the planted reward likes detail: the strongest sharpening wins every group
    assert chosen["ranked/strength"] == pytest.approx(1.0)
    assert chosen["ranked/edited_share"] == 1.0 and chosen["ranked/gain"] > 0


def test_mean_candidates_edit_each_groups_consensus():
    cfg = ranked(ranked_edit_strengths=(-0.5, 0.5, 1.0), ranked_candidates="mean")
    trainer = trainer_for(cfg, smoothness)
    groups = trainer.train_inputs.select([0, 1]).repeat_each(cfg.group_size)
    images = torch.rand(len(groups), 3, 8, 8, generator=torch.Generator().manual_seed(4)) * 2 - 1
    targets, chosen = trainer.ranked_targets(groups, images)
    for group in range(2):
        rows = slice(group * cfg.group_size, (group + 1) * cfg.group_size)
        consensus = images[rows].mean(dim=0, keepdim=True)
        edits = [unsharp_mask(consensus, s, sigma=1.0).clamp(-1, 1)[0] for s in (0.0, -0.5, 0.5, 1.0)]
        best = max(edits, key=lambda edit: float(smoothness(None, edit[None])))
        assert all(torch.allclose(target, best, atol=1e-6) for target in targets[rows])
    assert chosen["ranked/strength"] == pytest.approx(-0.5)  # the smoothest of the proposals


def split_members(lq: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Three members whose mean likes detail everywhere; on bright faces they split (one likes detail four times
    as much, one dislikes it three times as much), on dark faces they agree."""
    brightness = images.mean(dim=(1, 2, 3)).clamp(min=0)
    liking = detail(images).unsqueeze(1)
    split = 8.0 * brightness.unsqueeze(1) * torch.tensor([[0.0, 1.0, -1.0]])
    return liking * (1.0 + split)


split_reward = LearnedReward(lambda lq, images: split_members(lq, images).mean(dim=1), split_members)


def groups_dark_and_bright(trainer: RLTrainer):
    groups = trainer.train_inputs.select([0, 1]).repeat_each(trainer.config.group_size)
    noise = torch.rand(len(groups), 3, 8, 8, generator=torch.Generator().manual_seed(5)) * 0.2 - 0.1
    level = torch.tensor([0.0] * trainer.config.group_size + [0.5] * trainer.config.group_size)
    return groups, noise + level.view(-1, 1, 1, 1)


def test_edit_confidence_holds_back_an_edit_the_members_disagree_about_and_keeps_one_they_agree_on():
    strengths = (-0.5, 0.5, 1.0)
    plain = trainer_for(ranked(ranked_edit_strengths=strengths, ranked_candidates="mean"), split_reward)
    groups, images = groups_dark_and_bright(plain)
    _, plain_chosen = plain.ranked_targets(groups, images)
    # by the members' mean alone, both faces are sharpened as far as the proposals go
    assert plain_chosen["ranked/strength"] == pytest.approx(1.0)
    assert plain_chosen["ranked/held_back_share"] == 0.0

    cautious = trainer_for(
        ranked(ranked_edit_strengths=strengths, ranked_candidates="mean", ranked_edit_confidence=1.0),
        split_reward,
    )
    targets, chosen = cautious.ranked_targets(groups, images)
    size = cautious.config.group_size
    dark_consensus, bright_consensus = images[:size].mean(dim=0), images[size:].mean(dim=0)
    assert torch.allclose(
        targets[0], unsharp_mask(dark_consensus[None], 1.0, sigma=1.0).clamp(-1, 1)[0], atol=1e-6
    )
    # the bright face is left as the policy restores it: its target is its own consensus, unedited
    assert all(torch.allclose(target, bright_consensus, atol=1e-6) for target in targets[size:])
    assert chosen["ranked/edited_share"] == 0.5 and chosen["ranked/held_back_share"] == 0.5


def test_edit_confidence_needs_a_reward_whose_members_can_be_asked():
    with pytest.raises(ValueError, match="members"):
        trainer_for(ranked(ranked_edit_confidence=1.0), sharpness)
    with pytest.raises(RLConfigError, match="ranked_edit_confidence"):
        ranked(ranked_edit_confidence=-0.5)


def test_one_target_per_group_lowers_the_solution_entropy(tmp_path):
    cfg = ranked(ranked_candidates="mean", max_steps=8, entropy_seeds=4, eval_every=8)
    result, policy, reference = run(tmp_path, cfg, reward_fn=sharpness, policy=HesitantStepPolicy())
    assert result.entropy_after < 0.8 * result.entropy_before
    assert float(torch.sigmoid(policy.reach.detach())) > float(torch.sigmoid(reference.reach.detach()))


def test_the_agreement_term_joins_the_ranked_loss_and_its_seeds_come_to_agree(tmp_path):
    def first_update_losses(cfg: RLConfig) -> tuple[list[float], dict[str, float]]:
        trainer = trainer_for(cfg, sharpness)
        losses: list[float] = []
        update = trainer._update
        trainer._update = lambda loss: (losses.append(float(loss.detach())), update(loss))[1]
        return losses, trainer.step()

    one_update = {"inner_epochs": 1, "minibatch_size": 64}  # every group of the step in one update
    without, _ = first_update_losses(ranked(**one_update))
    weight = 50.0
    with_agreement, metrics = first_update_losses(ranked(agreement_weight=weight, **one_update))
    # the same rollouts, the same policy: the losses differ by the weighted disagreement alone
    assert len(with_agreement) == 1 and metrics["loss/disagreement"] > 0
    assert with_agreement[0] - without[0] == pytest.approx(weight * metrics["loss/disagreement"], rel=1e-4)

    agreeing, policy, reference = run(
        tmp_path,
        ranked(agreement_weight=weight, max_steps=8, entropy_seeds=4, eval_every=8),
        reward_fn=sharpness,
        policy=HesitantStepPolicy(),
    )
    assert agreeing.entropy_after < 0.8 * agreeing.entropy_before
    assert agreeing.history[-1]["loss/disagreement"] < agreeing.history[0]["loss/disagreement"]
    with pytest.raises(RLConfigError, match="agreement_target"):
        RLConfig.preset("test", policy_update="reward_ranked", agreement_weight=1.0, agreement_target="best")


@pytest.mark.parametrize(
    ("reward_fn", "direction"), [(sharpness, 1.0), (smoothness, -1.0)], ids=["sharper", "smoother"]
)
def test_the_reward_decides_the_direction_and_training_follows_it(tmp_path, reward_fn, direction):
    # neither reward has a gradient (reward_backprop would refuse them); only their ranking reaches the policy
    result, policy, reference = run(tmp_path, ranked(), reward_fn=reward_fn)
    assert result.stop_reason == STOP_COMPLETED and result.steps == 6
    strengths = [history["ranked/strength"] for history in result.history]
    assert all(direction * strength > 0 for strength in strengths)
    rewards = [evaluation["eval/learned_reward"] for evaluation in result.evaluations]
    assert rewards[-1] > rewards[0]
    assert "loss/fit" in result.history[-1] and not torch.equal(policy.mix.weight, reference.mix.weight)


def test_a_large_kl_weight_holds_the_ranked_policy_near_the_reference(tmp_path):
    free, free_policy, free_reference = run(tmp_path / "free", ranked(), reward_fn=sharpness)
    held, held_policy, held_reference = run(
        tmp_path / "held", ranked(kl_weight=1e5, ranked_fit_weight=1.0), reward_fn=sharpness
    )
    moved = sum(
        float((a - b).detach().pow(2).sum())
        for a, b in zip(free_policy.parameters(), free_reference.parameters())
    )
    kept = sum(
        float((a - b).detach().pow(2).sum())
        for a, b in zip(held_policy.parameters(), held_reference.parameters())
    )
    assert kept < 0.1 * moved


def test_ranked_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    cfg = ranked(max_steps=4, checkpoint_every=2, eval_every=2)
    straight, straight_policy, _ = run(tmp_path / "straight", cfg, reward_fn=sharpness)

    def crash_at_step_3(step, total, metrics):
        if step == 3:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "resumed", cfg, reward_fn=sharpness, on_progress=crash_at_step_3)
    resumed, resumed_policy, _ = run(tmp_path / "resumed", cfg, reward_fn=sharpness)
    for a, b in zip(straight_policy.state_dict().values(), resumed_policy.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["ranked/strength"] for h in straight.history] == [h["ranked/strength"] for h in resumed.history]


def test_the_proposals_survive_a_json_round_trip_and_bad_values_are_refused(tmp_path):
    cfg = RLConfig.preset("test", policy_update="reward_ranked", ranked_edit_strengths=[-0.5, 0.25])
    assert cfg.ranked_edit_strengths == (-0.5, 0.25)
    cfg.save(tmp_path / "config.json")
    assert RLConfig.load(tmp_path / "config.json") == cfg
    with pytest.raises(RLConfigError, match="ranked_edit_sigma"):
        RLConfig.preset("test", ranked_edit_sigma=0.0)
    with pytest.raises(RLConfigError, match="ranked_fit_weight"):
        RLConfig.preset("test", ranked_fit_weight=-1.0)
    with pytest.raises(RLConfigError, match="ranked_candidates"):
        RLConfig.preset("test", ranked_candidates="best")
