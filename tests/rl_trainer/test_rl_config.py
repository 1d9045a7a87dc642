import json

import pytest

from rl_trainer.config import RLConfig, RLConfigError, config_from_argument


def test_presets_round_trip_through_json(tmp_path):
    config = RLConfig.preset("tiny", seed=3)
    config.save(tmp_path / "rl_config.json")
    assert RLConfig.load(tmp_path / "rl_config.json") == config
    assert config_from_argument(str(tmp_path / "rl_config.json"), max_steps=2) == RLConfig.preset(
        "tiny", seed=3, max_steps=2
    )


def test_a_foreign_config_file_gets_a_clear_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"learning_rate": 1e-4, "unet_channels": [16, 32]}))
    with pytest.raises(RLConfigError, match="unknown fields.*unet_channels"):
        RLConfig.load(path)
    path.write_text("{not json")
    with pytest.raises(RLConfigError, match="cannot read"):
        RLConfig.load(path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("group_size", 1, "group_size"),
        ("eta", 0.0, "eta"),
        ("clip_range", 1.5, "clip_range"),
        ("policy_update", "alignprop", "policy_update must be one of ddpo, reward_backprop"),
        ("learned_reward_pessimism", -1.0, "pessimism"),
        ("perceptual_trunks", 0, "perceptual_trunks"),
        ("agreement_target", "median", "agreement_target must be 'mean' or 'best'"),
        ("eval_entropy_seeds", 1, "eval_entropy_seeds must be 0"),
        ("keep_best_entropy_ratio", 0.7, "needs keep_best and eval_entropy_seeds"),
        # the test preset's guard watches the perceptual evaluator, whose score is not in dB
        ("fidelity_budget_db", 0.3, "needs a held_out_evaluator in dB \\(fidelity or fidelity_linear\\)"),
        ("fidelity_face_budget_db", 1.0, "needs a held_out_evaluator in dB"),
        ("fidelity_backoffs", -1, "fidelity_backoffs must be >= 0"),
        # the divergence rule may only be off where a fidelity budget bounds what RL trades
        ("hacking_patience", 0, "hacking_patience must be >= 1, or 0 \\(off\\) with a fidelity budget"),
        ("hacking_patience", -1, "hacking_patience must be >= 1"),
        ("fidelity_face_ceiling_db", 0.0, "fidelity_face_ceiling_db must be > 0 or None"),
        ("fidelity_backoff_factor", 1.0, "fidelity_backoff_factor in \\(0, 1\\)"),
    ],
)
def test_invalid_values_are_refused(field, value, message):
    with pytest.raises(RLConfigError, match=message):
        RLConfig.preset("test", **{field: value})


def test_unknown_preset():
    with pytest.raises(RLConfigError, match="unknown RL preset"):
        RLConfig.preset("huge")


def test_the_preference_preset_learns_from_the_reward_model_alone():
    """tiny_preference (benchmarks/rl_gain.py's learned-reward row, the train-rl default): no fixed term that reads
    the HQ, the reward model ranks and is never differentiated, every sample of an input pulled towards one
    target and towards the other samples of its input (the determinism goal), the KL leash kept, a guard that
    never reads the HQ either."""
    config = RLConfig.preset("tiny_preference")
    assert config.policy_update == "reward_ranked" and config.ranked_candidates == "mean"
    assert sorted(config.ranked_edit_strengths) == sorted(-s for s in config.ranked_edit_strengths), (
        "symmetric"
    )
    assert config.perceptual_weight == 0
    assert config.learned_reward_weight > 0 and config.learned_reward_pessimism > 0
    assert config.kl_weight > 0 and config.consistency_weight > 0
    assert config.agreement_weight > 0 and config.agreement_target == "mean"
    assert config.held_out_evaluator == "fidelity" and config.hacking_patience >= 1
    assert config.max_minutes is not None and config.max_minutes <= 20
    assert RLConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("evaluator", ["fidelity", "fidelity_linear"])
def test_a_fidelity_budget_is_positive_and_in_db(evaluator):
    config = RLConfig.preset(
        "test", held_out_evaluator=evaluator, fidelity_budget_db=0.3, fidelity_face_budget_db=1.0
    )
    assert (config.fidelity_budget_db, config.fidelity_face_budget_db) == (0.3, 1.0)
    for budget in ({"fidelity_budget_db": 0.3}, {"fidelity_face_budget_db": 1.0}):
        off = RLConfig.preset("test", held_out_evaluator=evaluator, hacking_patience=0, **budget)
        assert off.hacking_patience == 0 and RLConfig.from_dict(off.to_dict()) == off
    with pytest.raises(RLConfigError, match="fidelity_budget_db must be > 0"):
        RLConfig.preset("test", held_out_evaluator="fidelity", fidelity_budget_db=0.0)
    with pytest.raises(RLConfigError, match="fidelity_face_budget_db must be > 0"):
        RLConfig.preset("test", held_out_evaluator="fidelity", fidelity_face_budget_db=-1.0)
