"""The judgment model on free utilities (no images): recovery, ties, both-bad, annotator reliability."""

import math

import torch

from reward_model.losses import BOTH_BAD, TIE, A, AnnotatorReliability, B, JudgmentHead


def sample_davidson(utilities, n, *, tie_strength, generator, scale=1.0):
    """Sample n comparisons of random item pairs from the Davidson model (no both-bad)."""
    items = len(utilities)
    i = torch.randint(items, (n,), generator=generator)
    j = (i + torch.randint(1, items, (n,), generator=generator)) % items
    half = scale * (utilities[i] - utilities[j]) / 2
    logits = torch.stack([half, -half, torch.full_like(half, math.log(tie_strength))], dim=1)
    outcome = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=generator).squeeze(1)
    return i, j, outcome


def fit_utilities(i, j, outcome, items, *, steps=300, reliability=None, annotator=None, a_left=None):
    utilities = torch.zeros(items, requires_grad=True)
    head = JudgmentHead(bad_threshold=-10.0)
    head.bad_threshold.requires_grad_(False)
    parameters = [utilities, head.log_tie_strength]
    if reliability is not None:
        parameters += list(reliability.parameters())
    optimizer = torch.optim.Adam(parameters, lr=0.05)
    for _ in range(steps):
        kwargs = {}
        if reliability is not None:
            scale, side_bias = reliability.lookup(annotator)
            kwargs = {"scale": scale, "side_bias": side_bias, "a_shown_left": a_left}
        loss = head.negative_log_likelihood(utilities[i], utilities[j], outcome, **kwargs).mean()
        if reliability is not None:
            loss = loss + reliability.prior_penalty() / len(outcome)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return utilities.detach() - utilities.detach().mean(), head


def test_probabilities_of_the_four_outcomes_sum_to_one():
    head = JudgmentHead(tie_strength=0.7, bad_threshold=0.3)
    reward_a, reward_b = torch.randn(50), torch.randn(50)
    probs = head.log_probs(reward_a, reward_b).exp()
    assert torch.allclose(probs.sum(-1), torch.ones(50), atol=1e-5)


def test_without_ties_and_both_bad_it_is_bradley_terry():
    head = JudgmentHead(tie_strength=1e-8, bad_threshold=-50.0)
    reward_a, reward_b = torch.randn(20), torch.randn(20)
    probs = head.log_probs(reward_a, reward_b).exp()
    assert torch.allclose(probs[:, A], torch.sigmoid(reward_a - reward_b), atol=1e-5)


def test_loss_is_minimised_by_the_true_utilities_on_synthetic_bt_data():
    generator = torch.Generator().manual_seed(0)
    true = torch.linspace(-2, 2, 8)
    i, j, outcome = sample_davidson(true, 6000, tie_strength=0.4, generator=generator)
    fitted, head = fit_utilities(i, j, outcome, 8)
    assert (fitted - (true - true.mean())).abs().max() < 0.25
    assert abs(head.tie_strength - 0.4) < 0.1
    # And the NLL at the true utilities is lower than at any visibly perturbed version of them.
    truth_head = JudgmentHead(tie_strength=0.4, bad_threshold=-10.0)
    at_truth = truth_head.negative_log_likelihood(true[i], true[j], outcome).mean()
    for _ in range(5):
        perturbed = true + 0.5 * torch.randn(8, generator=generator)
        assert truth_head.negative_log_likelihood(perturbed[i], perturbed[j], outcome).mean() > at_truth


def test_ties_are_most_likely_between_equal_rewards_and_pull_them_together():
    head = JudgmentHead(tie_strength=0.5, bad_threshold=-50.0)
    differences = torch.linspace(-3, 3, 61)
    p_tie = head.log_probs(differences, torch.zeros(61)).exp()[:, TIE]
    assert int(p_tie.argmax()) == 30
    reward_a = torch.tensor([1.0], requires_grad=True)
    reward_b = torch.tensor([-1.0], requires_grad=True)
    head.negative_log_likelihood(reward_a, reward_b, torch.tensor([TIE])).sum().backward()
    assert reward_a.grad is not None and reward_b.grad is not None
    assert reward_a.grad > 0 and reward_b.grad < 0  # descending the loss brings a down and b up


def test_both_bad_pushes_both_rewards_down_without_ranking_them():
    head = JudgmentHead(tie_strength=0.5, bad_threshold=0.0)
    reward_a = torch.tensor([0.5], requires_grad=True)
    reward_b = torch.tensor([-0.3], requires_grad=True)
    head.negative_log_likelihood(reward_a, reward_b, torch.tensor([BOTH_BAD])).sum().backward()
    assert reward_a.grad > 0 and reward_b.grad > 0  # both rewards go down
    # Symmetric in a and b: it carries no preference between the two.
    forward = head.negative_log_likelihood(
        torch.tensor([0.5]), torch.tensor([-0.3]), torch.tensor([BOTH_BAD])
    )
    swapped = head.negative_log_likelihood(
        torch.tensor([-0.3]), torch.tensor([0.5]), torch.tensor([BOTH_BAD])
    )
    assert torch.allclose(forward, swapped)


def test_both_bad_labels_leave_the_order_of_the_candidates_intact():
    """Items 0..5 of rising utility; many 'both bad' on pairs of the two worst must not tie or swap them."""
    generator = torch.Generator().manual_seed(1)
    true = torch.linspace(-2, 2, 6)
    i, j, outcome = sample_davidson(true, 3000, tie_strength=0.2, generator=generator)
    i = torch.cat([i, torch.zeros(1500, dtype=torch.long)])
    j = torch.cat([j, torch.ones(1500, dtype=torch.long)])
    outcome = torch.cat([outcome, torch.full((1500,), BOTH_BAD)])
    utilities = torch.zeros(6, requires_grad=True)
    head = JudgmentHead(bad_threshold=0.0)
    optimizer = torch.optim.Adam([utilities, *head.parameters()], lr=0.05)
    for _ in range(400):
        loss = head.negative_log_likelihood(utilities[i], utilities[j], outcome).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    fitted = utilities.detach()
    assert fitted[0] < fitted[1] < fitted[2]
    assert (fitted[1] - fitted[0]) > 0.5 * (true[1] - true[0])
    threshold = float(head.bad_threshold.detach())
    assert fitted[0] < threshold and fitted[1] < threshold  # the two "bad" items sit below the bar
    assert fitted[5] > threshold


def test_annotator_weights_drop_for_a_planted_spammer():
    generator = torch.Generator().manual_seed(2)
    true = torch.linspace(-2, 2, 10)
    parts = []
    for annotator in range(3):  # two careful annotators and one spammer
        i, j, outcome = sample_davidson(true, 1500, tie_strength=0.2, generator=generator)
        if annotator == 2:
            outcome = torch.randint(2, (1500,), generator=generator)
        parts.append((i, j, outcome, torch.full((1500,), annotator)))
    i, j, outcome, annotator = (torch.cat(column) for column in zip(*parts))
    reliability = AnnotatorReliability(["careful1", "careful2", "spammer"], prior_weight=2.0)
    fitted, _ = fit_utilities(
        i,
        j,
        outcome,
        10,
        steps=400,
        reliability=reliability,
        annotator=annotator,
        a_left=torch.ones(len(i), dtype=torch.bool),
    )
    scale = reliability.scale.detach()
    assert scale[2] < 0.25 * scale[:2].min()
    assert scale[:2].min() > 0.6
    assert torch.corrcoef(torch.stack([fitted, true]))[0, 1] > 0.97


def test_adversarial_annotator_gets_a_negative_scale_and_side_bias_is_learned():
    generator = torch.Generator().manual_seed(3)
    true = torch.linspace(-2, 2, 10)
    i, j, outcome = sample_davidson(true, 2000, tie_strength=0.1, generator=generator)
    i2, j2, outcome2 = sample_davidson(-true, 1000, tie_strength=0.1, generator=generator)  # inverted answers
    i3, j3, _ = sample_davidson(true, 1000, tie_strength=0.1, generator=generator)
    a_left3 = torch.rand(1000, generator=generator) < 0.5
    outcome3 = torch.where(a_left3, torch.tensor(A), torch.tensor(B))  # always clicks the left side
    i, j = torch.cat([i, i2, i3]), torch.cat([j, j2, j3])
    outcome = torch.cat([outcome, outcome2, outcome3])
    annotator = torch.cat([torch.zeros(2000), torch.ones(1000), torch.full((1000,), 2)]).long()
    a_left = torch.cat([torch.rand(3000, generator=generator) < 0.5, a_left3])
    reliability = AnnotatorReliability(["careful", "adversary", "left_clicker"])
    fit_utilities(i, j, outcome, 10, steps=400, reliability=reliability, annotator=annotator, a_left=a_left)
    assert reliability.scale[1] < 0
    side_bias = reliability.side_bias.detach()
    assert side_bias[2] > 1.0 > abs(float(side_bias[0]))


def test_unknown_annotators_get_the_prior():
    reliability = AnnotatorReliability(["x"])
    with torch.no_grad():
        reliability.scale.fill_(0.1)
    scale, side_bias = reliability.lookup(reliability.indices(["x", "never-seen"]))
    assert torch.allclose(scale, torch.tensor([0.1, 1.0]))
    assert torch.allclose(side_bias, torch.zeros(2))
