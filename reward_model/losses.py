"""The judgment model: how a pair of rewards turns into the probability of each answer an annotator can give.

An annotator shown candidates a and b answers ``a``, ``b``, ``tie`` or ``both_bad``. We model this as a
hurdle followed by a Davidson comparison:

1. **Both bad** (absolute, not pairwise). Each candidate is independently "bad" with probability
   ``sigmoid(threshold - r)`` where ``threshold`` is learned; the annotator answers ``both_bad``
   when both are bad, ``P(both_bad) = sigmoid(t - r_a) * sigmoid(t - r_b)``. "Both bad" says
   nothing about which of the two is better, so it is kept out of the pairwise term: it only pushes both
   rewards below the threshold. Treating it as a tie would wrongly pull two poor candidates of different
   quality together, and dropping it would waste the one signal about absolute quality we have.
2. **Otherwise a Davidson (1970) comparison** with a learned tie strength ``nu``::

       P(a) : P(b) : P(tie) = exp(d) : exp(-d) : nu,    d = s (r_a - r_b) / 2 + side_bias * (±1)

   With ``nu = 0`` this is exactly Bradley–Terry, ``P(a | a or b) = sigmoid(s (r_a - r_b))``. Ties are a
   proper outcome of the likelihood (most likely when the rewards are close), not half wins.

``s`` and ``side_bias`` are per-annotator reliability parameters (:class:`AnnotatorReliability`), learned
jointly with the rewards, in the spirit of Dawid–Skene: ``s`` is an inverse temperature, near 1 for a
careful annotator, near 0 for a spammer (whose labels then carry no gradient to the reward), and negative
for an adversarial one (whose labels are then read inverted). ``side_bias`` absorbs a preference for one
side of the screen. The reliability acts on the comparison only, not on the both-bad term: an inverted
annotator flips which candidate wins, not what "bad" means, and a shared scale there keeps the likelihood
convex in ``s`` so an adversary's ``s`` can cross zero. A Gaussian prior keeps ``s`` near 1 and ``side_bias`` near 0 unless the labels say
otherwise, and fixes the otherwise free scale of the reward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# Column order of the outcome probabilities and the integer codes of the outcomes.
OUTCOME_CODES: dict[str, int] = {"a": 0, "b": 1, "tie": 2, "both_bad": 3}
A, B, TIE, BOTH_BAD = 0, 1, 2, 3


def log1mexp(log_p: Tensor) -> Tensor:
    """log(1 - exp(log_p)) for log_p < 0, accurate on both ends (Mächler 2012)."""
    log_p = log_p.clamp(max=-1e-7)
    return torch.where(log_p > -math.log(2.0), torch.log(-torch.expm1(log_p)), torch.log1p(-torch.exp(log_p)))


class JudgmentHead(nn.Module):
    """Learned tie strength and both-bad threshold; turns two rewards into log-probabilities of the outcomes."""

    def __init__(self, tie_strength: float = 0.5, bad_threshold: float = 0.0) -> None:
        super().__init__()
        self.log_tie_strength = nn.Parameter(torch.tensor(math.log(tie_strength)))
        self.bad_threshold = nn.Parameter(torch.tensor(float(bad_threshold)))

    @property
    def tie_strength(self) -> float:
        return float(self.log_tie_strength.detach().exp())

    def log_probs(
        self,
        reward_a: Tensor,
        reward_b: Tensor,
        *,
        scale: Tensor | float = 1.0,
        side_bias: Tensor | float = 0.0,
        a_shown_left: Tensor | None = None,
    ) -> Tensor:
        """Log-probabilities ``[..., 4]`` of (a, b, tie, both_bad); all arguments broadcast together."""
        half_difference = scale * (reward_a - reward_b) / 2
        if a_shown_left is not None:
            # +1 when a was on the left, -1 when b was: a left-leaning annotator favours whichever is there.
            side_sign = a_shown_left.to(half_difference.dtype) * 2 - 1
            half_difference = half_difference + side_bias * side_sign
        tie_logit = self.log_tie_strength.expand_as(half_difference)
        davidson = torch.log_softmax(
            torch.stack([half_difference, -half_difference, tie_logit], dim=-1), dim=-1
        )
        log_bad_a = F.logsigmoid(self.bad_threshold - reward_a)
        log_bad_b = F.logsigmoid(self.bad_threshold - reward_b)
        log_both_bad = (log_bad_a + log_bad_b).expand_as(half_difference)
        log_compared = log1mexp(log_both_bad)
        return torch.cat([davidson + log_compared.unsqueeze(-1), log_both_bad.unsqueeze(-1)], dim=-1)

    def negative_log_likelihood(
        self, reward_a: Tensor, reward_b: Tensor, outcome: Tensor, **kwargs: Tensor
    ) -> Tensor:
        """Per-judgment NLL; ``outcome`` holds codes from :data:`OUTCOME_CODES` and broadcasts like the rewards."""
        log_probs = self.log_probs(reward_a, reward_b, **kwargs)
        outcome = outcome.expand(log_probs.shape[:-1])
        return -log_probs.gather(-1, outcome.unsqueeze(-1)).squeeze(-1)


class AnnotatorReliability(nn.Module):
    """Per-annotator inverse temperature ``scale`` and screen-side bias, learned with the reward.

    Annotators not seen in training (index -1) get the prior values: scale 1, no side bias.
    """

    def __init__(self, annotator_ids: Sequence[str], *, prior_weight: float = 2.0) -> None:
        super().__init__()
        self.annotator_ids = list(dict.fromkeys(annotator_ids))
        self.index = {annotator_id: i for i, annotator_id in enumerate(self.annotator_ids)}
        self.prior_weight = prior_weight
        self.scale = nn.Parameter(torch.ones(len(self.annotator_ids)))
        self.side_bias = nn.Parameter(torch.zeros(len(self.annotator_ids)))

    def indices(self, annotator_ids: Sequence[str]) -> Tensor:
        return torch.tensor(
            [self.index.get(annotator_id, -1) for annotator_id in annotator_ids], dtype=torch.long
        )

    def lookup(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        known = indices >= 0
        safe = indices.clamp(min=0)
        scale = torch.where(known, self.scale[safe], torch.ones_like(self.scale[safe]))
        side_bias = torch.where(known, self.side_bias[safe], torch.zeros_like(self.side_bias[safe]))
        return scale, side_bias

    def prior_penalty(self) -> Tensor:
        """Negative log of the Gaussian prior (scale ~ N(1, .), bias ~ N(0, .)), up to a constant."""
        return self.prior_weight * (((self.scale - 1) ** 2).sum() + (self.side_bias**2).sum())

    def summary(self) -> dict[str, dict[str, float]]:
        """Per annotator: ``scale``, ``side_bias`` and ``relative_weight`` (scale over the median |scale|,
        since rewards and scales trade off a common factor: 1 is a typical annotator, 0 a spammer, < 0 inverted)."""
        scale = self.scale.detach()
        typical = float(scale.abs().median().clamp(min=1e-6)) if len(scale) else 1.0
        return {
            annotator_id: {
                "scale": float(scale[i]),
                "side_bias": float(self.side_bias.detach()[i]),
                "relative_weight": float(scale[i]) / typical,
            }
            for i, annotator_id in enumerate(self.annotator_ids)
        }
