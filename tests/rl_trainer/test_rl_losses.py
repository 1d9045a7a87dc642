import pytest
import torch

from rl_trainer.losses import (
    clipped_policy_loss,
    gaussian_kl,
    gaussian_log_prob,
    group_advantages,
    sampled_kl,
)


def test_advantages_have_zero_mean_and_unit_spread_within_each_group():
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, 10.5, 9.0, 30.0])
    advantages = group_advantages(rewards, group_size=4, clip=100.0).view(2, 4)
    assert torch.allclose(advantages.mean(dim=1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(advantages.std(dim=1, unbiased=False), torch.ones(2), atol=1e-4)
    # ranking inside a group is kept; the second group's offset of ~10 is gone
    assert advantages[0].argsort().tolist() == [0, 1, 2, 3]
    assert advantages[1].argmax() == 3


def test_a_group_of_equal_rewards_teaches_nothing():
    advantages = group_advantages(torch.tensor([5.0, 5.0, 5.0, 1.0, 2.0, 3.0]), group_size=3, clip=5.0)
    assert torch.equal(advantages[:3], torch.zeros(3))
    assert advantages[3:].abs().sum() > 0


def test_advantages_are_clipped():
    rewards = torch.tensor([0.0] * 15 + [100.0])  # one outlier: normalised to sqrt(15) ~ 3.9
    advantages = group_advantages(rewards, group_size=16, clip=2.0)
    assert advantages.max() == pytest.approx(2.0)
    assert advantages.min() >= -2.0


def test_advantages_reject_a_ragged_batch():
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.zeros(7), group_size=4, clip=1.0)


def test_clipping_bounds_the_ratio_the_objective_can_use():
    clip = 0.2
    old = torch.zeros(4, 3)
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    # ratios e^{±1}: far outside [0.8, 1.2]
    new = torch.tensor([[1.0] * 3, [-1.0] * 3, [-1.0] * 3, [1.0] * 3], requires_grad=True)
    loss, stats = clipped_policy_loss(new, old, advantages, clip_range=clip)
    loss.backward()
    # rows 0 and 2 moved beyond the clip range in the advantage's direction: no gradient, objective capped
    assert torch.equal(new.grad[0], torch.zeros(3))
    assert torch.equal(new.grad[2], torch.zeros(3))
    # rows 1 and 3 moved against their advantage: the unclipped term keeps pushing them back
    assert (new.grad[1] < 0).all() and (new.grad[3] > 0).all()
    assert stats.clip_fraction == 1.0
    expected = (
        -(1 * (1 + clip) + 1 * torch.exp(torch.tensor(-1.0)) - (1 - clip) - torch.exp(torch.tensor(1.0))) / 4
    )
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_however_large_the_ratio_the_clipped_objective_stays_bounded():
    old = torch.zeros(1, 1)
    advantages = torch.tensor([2.0])
    for log_ratio in (0.5, 2.0, 20.0):
        loss, _ = clipped_policy_loss(torch.full((1, 1), log_ratio), old, advantages, clip_range=0.1)
        assert -float(loss) == pytest.approx(2.0 * 1.1)


def test_at_ratio_one_the_loss_is_the_negative_mean_advantage():
    advantages = torch.tensor([0.5, -1.5, 2.0])
    log_probs = torch.randn(3, 5)
    loss, stats = clipped_policy_loss(log_probs, log_probs.clone(), advantages, clip_range=0.1)
    assert float(loss) == pytest.approx(-float(advantages.mean()), abs=1e-6)
    assert stats.clip_fraction == 0.0 and stats.approx_kl_to_old == pytest.approx(0.0, abs=1e-7)


def test_gaussian_kl_matches_torch_distributions():
    generator = torch.Generator().manual_seed(0)
    policy = torch.randn(2, 3, 3, 4, 4, generator=generator)
    reference = torch.randn(2, 3, 3, 4, 4, generator=generator)
    std = torch.tensor([0.5, 1.0, 2.0])
    kl = gaussian_kl(policy, reference, std)
    scale = std.view(1, -1, 1, 1, 1).expand_as(policy)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(policy, scale), torch.distributions.Normal(reference, scale)
    )
    assert torch.allclose(kl, expected.flatten(2).mean(2), atol=1e-6)
    assert torch.equal(gaussian_kl(policy, policy, std), torch.zeros(2, 3))


def test_gaussian_log_prob_matches_torch_distributions():
    means = torch.randn(2, 3, 3, 4, 4)
    states = torch.randn(2, 3, 3, 4, 4)
    std = torch.tensor([0.3, 0.7, 1.1])
    expected = torch.distributions.Normal(means, std.view(1, -1, 1, 1, 1)).log_prob(states).flatten(2).mean(2)
    assert torch.allclose(gaussian_log_prob(states, means, std), expected, atol=1e-5)


def test_sampled_kl_is_non_negative_and_zero_at_the_reference():
    log_probs = torch.randn(4, 6)
    assert (sampled_kl(log_probs, torch.randn(4, 6)) >= 0).all()
    assert torch.equal(sampled_kl(log_probs, log_probs), torch.zeros(4, 6))
