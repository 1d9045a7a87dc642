"""On-policy RL of the diffusion restorer against a reward callable (DDPO clipped ratio, GRPO group advantages,
KL to the frozen reference, fidelity terms, and a held-out guard against reward hacking)."""

from rl_trainer.config import PRESETS, RLConfig, RLConfigError
from rl_trainer.train import RLResult, train, train_policy
from rl_trainer.trainer import RLTrainer

__all__ = ["PRESETS", "RLConfig", "RLConfigError", "RLResult", "RLTrainer", "train", "train_policy"]
