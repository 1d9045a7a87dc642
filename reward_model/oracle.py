"""Simulated annotators: an oracle that knows the HQ original and judges pairs like a person would.

The oracle scores each candidate against the HQ face with a *distance* (lower is better) and answers:

- ``both_bad`` when both candidates are farther than ``both_bad_threshold`` from the HQ;
- ``tie`` when the two distances are within ``tie_margin`` of each other;
- otherwise ``a`` with the Bradley–Terry probability ``sigmoid((d_b - d_a) / temperature)`` (so a lower
  temperature is a more careful annotator), else ``b``.

Distances, selectable by name (:func:`distance_by_name`, :func:`oracle_by_name`, or ``distance="<name>"``):

- ``lpips_randtrunk`` (the default today, through :func:`default_distance`; ``lpips_alex`` instead when the
  ImageNet AlexNet is in the torch hub cache): ``restorer.metrics.PerceptualDistance``, LPIPS heads on a
  random AlexNet trunk of seed 0. The RL's perceptual term is the same family (random trunks of seeds 1..N)
  and so is the hacking guard's held-out evaluator, so RL can climb this oracle without reading a judgment.
- ``identity_sharpness``: ``reward_model.oracle_features.IdentitySharpnessScore``, ``identity + 0.35 sharpness
  + 2.5 artifact``: the dlib face-descriptor distance to the HQ (a trained face recognition network, under the
  HQ's own landmark alignment), the band-pass energy mismatch with the HQ in nats (blur and over-sharpening
  both cost) and the worst-5 % local band-pass error. 0 for the HQ, ≈ 1 for a ``gfpgan``-degraded 64-px LQ.
  Nothing else in the platform computes any of these, and the descriptor is not differentiable: RL learns
  this oracle's preference only through its judgments. Defaults (0.07, 0.01, 1.25), see below.
- ``l1_gradient``: mean |x - y| + mean |∇x - ∇y|, for tests and as the fallback without ``restorer.metrics``.

Kinds of annotator (``KINDS``):

- ``reliable``: the rule above at the given temperature;
- ``noisy``: the same rule at ``NOISY_TEMPERATURE_FACTOR`` times the temperature;
- ``left_biased``: with probability ``side_bias`` clicks whatever is shown on the left, else reliable;
- ``spammer``: ignores the images (a / b 45 % each, tie and both_bad 5 % each);
- ``adversarial``: reliable, then answers the opposite of a strict preference.

The web's ``simulate_annotators`` command fetches a pair over the HTTP API, calls :meth:`OracleAnnotator.judge`
and posts the answer, so the oracle never touches the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from reward_model.data import as_image_tensor
from reward_model.export import Outcome, Side

Kind = Literal["reliable", "noisy", "left_biased", "spammer", "adversarial"]
KINDS: tuple[str, ...] = get_args(Kind)
NOISY_TEMPERATURE_FACTOR = 4.0
SPAMMER_OUTCOME_PROBABILITIES = {"a": 0.45, "b": 0.45, "tie": 0.05, "both_bad": 0.05}

# Defaults per distance, in that distance's units: (temperature, tie margin, both-bad threshold). Chosen on
# the demo data (64-px synthetic faces, candidates of graded quality: reward_learning's mix of HQ, classical
# restorations and noise) so that a reliable annotator agrees with the noise-free preference on ~88 % of its
# strict answers, ~2 % of answers are ties and "both bad" marks only pairs of two of the worst candidates.
# lpips_randtrunk distances are small (median ~0.005 there). identity_sharpness, measured on 24 train faces x 8
# candidates (672 pairs): median score 0.61, median |difference| 0.22, 2nd percentile 0.0095; temperature 0.07
# gives 89.5 % agreement, margin 0.01 2.2 % ties, threshold 1.25 (~95th percentile of the scores) 1.3 % both
# bad. benchmarks/oracle_independence.py measures it again on a harder pool (other faces, restorer samples).
DEFAULTS_BY_DISTANCE: dict[str, tuple[float, float, float]] = {
    "lpips_randtrunk": (0.001, 0.0001, 0.015),
    "lpips_alex": (0.02, 0.002, 0.45),
    "l1_gradient": (0.02, 0.002, 1.0),
    "identity_sharpness": (0.07, 0.01, 1.25),
}
FALLBACK_DEFAULTS = DEFAULTS_BY_DISTANCE["lpips_randtrunk"]

DistanceFn = Callable[[Tensor, Tensor], Tensor]


class _L1GradientDistance:
    """Fallback distance when ``restorer.metrics`` is unavailable: mean |x - y| plus mean |∇x - ∇y|."""

    name = "l1_gradient"

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        diff = x - y
        dx = diff[..., :, 1:] - diff[..., :, :-1]
        dy = diff[..., 1:, :] - diff[..., :-1, :]
        return diff.abs().mean(dim=(1, 2, 3)) + dx.abs().mean(dim=(1, 2, 3)) + dy.abs().mean(dim=(1, 2, 3))


def default_distance() -> DistanceFn:
    """The project's perceptual distance (``restorer.metrics.PerceptualDistance``) or the L1-gradient fallback."""
    try:
        from restorer.metrics import PerceptualDistance
    except ImportError:
        return _L1GradientDistance()
    return PerceptualDistance()


# The names distance_by_name understands; "default" is default_distance() (the oracle of today's runs).
DISTANCE_NAMES: tuple[str, ...] = ("default", "lpips_randtrunk", "identity_sharpness", "l1_gradient")


def distance_by_name(name: str) -> DistanceFn:
    """The oracle distance called ``name`` (:data:`DISTANCE_NAMES`). ``identity_sharpness`` needs dlib and
    face_recognition_models and raises ``OracleFeaturesUnavailableError`` without them: falling back to
    another distance would silently bring back an oracle the RL can see."""
    if name == "default":
        return default_distance()
    if name == "lpips_randtrunk":
        from restorer.metrics import RANDOM_TRUNK_SEED, PerceptualDistance

        # Seed 0 is the offline default's trunk; asked for by name it stays random even where the ImageNet
        # AlexNet is cached, and keeps the name its defaults are filed under.
        distance = PerceptualDistance(trunk_seed=RANDOM_TRUNK_SEED)
        distance.name = "lpips_randtrunk"
        return distance
    if name == "identity_sharpness":
        from reward_model.oracle_features import IdentitySharpnessScore

        return IdentitySharpnessScore()
    if name == "l1_gradient":
        return _L1GradientDistance()
    raise ValueError(f"unknown oracle distance {name!r}; expected one of {', '.join(DISTANCE_NAMES)}")


def distance_name(distance: DistanceFn) -> str:
    return str(getattr(distance, "name", type(distance).__name__))


def noise_free_preference(distance_a: float, distance_b: float) -> Outcome:
    """What an infinitely careful annotator prefers: the candidate closer to the HQ."""
    if distance_a < distance_b:
        return "a"
    if distance_b < distance_a:
        return "b"
    return "tie"


class OracleAnnotator:
    """A simulated annotator of one ``kind``; deterministic given ``seed`` and the sequence of calls."""

    def __init__(
        self,
        kind: Kind | str,
        *,
        temperature: float | None = None,
        tie_margin: float | None = None,
        both_bad_threshold: float | None = None,
        side_bias: float = 0.35,
        seed: int = 0,
        distance: DistanceFn | str | None = None,
    ) -> None:
        """Settings left as None take the defaults of the distance in use (:data:`DEFAULTS_BY_DISTANCE`).
        ``distance``: a callable, a name of :data:`DISTANCE_NAMES`, or None for :func:`default_distance`."""
        if kind not in KINDS:
            raise ValueError(f"unknown annotator kind {kind!r}; expected one of {', '.join(KINDS)}")
        self._distance = distance_by_name(distance) if isinstance(distance, str) else distance
        if temperature is None or tie_margin is None or both_bad_threshold is None:
            defaults = DEFAULTS_BY_DISTANCE.get(distance_name(self.distance), FALLBACK_DEFAULTS)
            temperature = defaults[0] if temperature is None else temperature
            tie_margin = defaults[1] if tie_margin is None else tie_margin
            both_bad_threshold = defaults[2] if both_bad_threshold is None else both_bad_threshold
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if tie_margin < 0:
            raise ValueError(f"tie_margin must be non-negative, got {tie_margin}")
        if not 0.0 <= side_bias <= 1.0:
            raise ValueError(f"side_bias must be a probability, got {side_bias}")
        self.kind: str = kind
        self.temperature = temperature * (NOISY_TEMPERATURE_FACTOR if kind == "noisy" else 1.0)
        self.tie_margin = tie_margin
        self.both_bad_threshold = both_bad_threshold
        self.side_bias = side_bias
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @property
    def distance(self) -> DistanceFn:
        # Built lazily: the perceptual network is only loaded by oracles that judge images or need its defaults.
        if self._distance is None:
            self._distance = default_distance()
        return self._distance

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "temperature": self.temperature,
            "tie_margin": self.tie_margin,
            "both_bad_threshold": self.both_bad_threshold,
            "side_bias": self.side_bias if self.kind == "left_biased" else 0.0,
            "seed": self.seed,
            "distance": distance_name(self.distance) if self._distance is not None else "default",
        }

    @torch.no_grad()
    def distances(self, hq: Any, a: Any, b: Any) -> tuple[float, float]:
        """Perceptual distances of a and b to the HQ (images as PIL or tensors [3,H,W] / [1,3,H,W] in [-1, 1])."""
        hq_t, a_t, b_t = (as_image_tensor(image).unsqueeze(0) for image in (hq, a, b))
        if a_t.shape[-2:] != hq_t.shape[-2:] or b_t.shape[-2:] != hq_t.shape[-2:]:
            size = hq_t.shape[-2:]
            a_t = torch.nn.functional.interpolate(a_t, size=size, mode="bilinear", antialias=True)
            b_t = torch.nn.functional.interpolate(b_t, size=size, mode="bilinear", antialias=True)
        distances = self.distance(torch.cat([a_t, b_t]), torch.cat([hq_t, hq_t]))
        return float(distances[0]), float(distances[1])

    def judge(self, hq: Any, a: Any, b: Any, *, shown_left: Side = "a") -> Outcome:
        """The annotator's answer for candidates a and b of the face whose original is ``hq``."""
        if self.kind == "spammer":
            return self._spam()
        distance_a, distance_b = self.distances(hq, a, b)
        return self.judge_distances(distance_a, distance_b, shown_left=shown_left)

    def judge_distances(self, distance_a: float, distance_b: float, *, shown_left: Side = "a") -> Outcome:
        """Same as :meth:`judge` from precomputed distances to the HQ (benchmarks compute them once)."""
        if shown_left not in ("a", "b"):
            raise ValueError(f"shown_left must be 'a' or 'b', got {shown_left!r}")
        if self.kind == "spammer":
            return self._spam()
        if self.kind == "left_biased" and self._rng.random() < self.side_bias:
            return shown_left
        if min(distance_a, distance_b) > self.both_bad_threshold:
            return "both_bad"
        if abs(distance_a - distance_b) <= self.tie_margin:
            return "tie"
        p_a = 1.0 / (1.0 + np.exp(-(distance_b - distance_a) / self.temperature))
        choice: Outcome = "a" if self._rng.random() < p_a else "b"
        if self.kind == "adversarial":
            return "b" if choice == "a" else "a"
        return choice

    def _spam(self) -> Outcome:
        outcomes = list(SPAMMER_OUTCOME_PROBABILITIES)
        index = self._rng.choice(len(outcomes), p=list(SPAMMER_OUTCOME_PROBABILITIES.values()))
        return outcomes[int(index)]  # type: ignore[return-value]


def oracle_by_name(name: str, kind: Kind | str = "reliable", **settings: Any) -> OracleAnnotator:
    """``OracleAnnotator(kind, distance=distance_by_name(name), **settings)``, e.g.
    ``oracle_by_name("identity_sharpness", "noisy", seed=3)``."""
    return OracleAnnotator(kind, distance=distance_by_name(name), **settings)
