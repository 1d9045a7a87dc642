import pytest
import torch

from reward_model.ensemble import RewardEnsemble, pair_statistics
from reward_model.model import RewardConfig, RewardModel
from reward_model.selection import (
    ACQUISITIONS,
    SELECTION_PRESETS,
    CandidatePair,
    CandidateSet,
    SelectionConfig,
    all_pairs,
    select_pairs,
    select_pairs_from_rewards,
    selection_preset,
)


def test_pair_statistics_disagreement_is_highest_where_members_disagree():
    agree_confident = (torch.tensor([3.0, 3.0, 3.0]), torch.zeros(3))
    agree_coin_flip = (torch.zeros(3), torch.zeros(3))
    disagree = (torch.tensor([3.0, -3.0, 0.0]), torch.zeros(3))
    bald = [float(pair_statistics(a, b)["bald"]) for a, b in (agree_confident, agree_coin_flip, disagree)]
    spread = [float(pair_statistics(a, b)["spread"]) for a, b in (agree_confident, agree_coin_flip, disagree)]
    assert bald[2] > 0.3 and bald[0] < 1e-4 and bald[1] < 1e-4
    assert spread[2] > 0.3 and spread[0] < 1e-6


def toy_rewards():
    # Candidate "u*" keys: members disagree; "c*" keys: members agree.
    return {
        "u0": torch.tensor([2.0, -2.0, 0.0]),
        "u1": torch.tensor([-2.0, 2.0, 0.0]),
        "c0": torch.tensor([1.0, 1.0, 1.0]),
        "c1": torch.tensor([0.0, 0.0, 0.0]),
        "c2": torch.tensor([-1.0, -1.0, -1.0]),
    }


def test_most_pairs_by_disagreement_and_a_random_share_each_with_its_reason():
    pairs = all_pairs({"in0": ["u0", "u1"], "in1": ["c0", "c1", "c2"]})
    assert len(pairs) == 1 + 3
    selected = select_pairs_from_rewards(pairs, toy_rewards(), budget=2, random_fraction=0.5, seed=0)
    assert [pair.reason for pair in selected] == ["disagreement", "random"]
    assert (selected[0].a_key, selected[0].b_key) == ("u0", "u1")
    assert selected[0].score > 0.3 and selected[0].spread is not None and selected[0].spread > 0.3
    assert selected[1].score == 0.0 and (selected[1].a_key, selected[1].b_key) != ("u0", "u1")
    assert len({(p.a_key, p.b_key) for p in selected}) == 2


def test_pairs_already_judged_are_discounted():
    pairs = [CandidatePair("in0", "u0", "u1"), CandidatePair("in0", "u0", "c1")]
    fresh = select_pairs_from_rewards(pairs, toy_rewards(), budget=1, random_fraction=0.0)
    assert (fresh[0].a_key, fresh[0].b_key) == ("u0", "u1")
    counts = {("u1", "u0"): 5}
    repeated = select_pairs_from_rewards(
        pairs, toy_rewards(), budget=1, random_fraction=0.0, label_counts=counts
    )
    assert (repeated[0].a_key, repeated[0].b_key) == ("u0", "c1")


def test_cold_start_and_single_member_models():
    pairs = all_pairs({"in0": ["c0", "c1", "c2"]})
    cold = select_pairs_from_rewards(pairs, None, budget=5, seed=1)
    assert len(cold) == 3 and {pair.reason for pair in cold} == {"cold_start"}
    single = {key: value[:1] for key, value in toy_rewards().items()}
    chosen = select_pairs_from_rewards(pairs, single, budget=1, random_fraction=0.0)
    assert chosen[0].reason == "bt_uncertainty"
    p = torch.sigmoid(torch.tensor(1.0)).item()  # the best pairs differ by one reward unit
    assert abs(chosen[0].score - p * (1 - p)) < 1e-5


def test_select_pairs_scores_images_with_an_ensemble():
    torch.manual_seed(0)
    model = RewardModel(RewardConfig(resolution=16, channels=(4, 8), ensemble_size=3))
    ensemble = RewardEnsemble(model)
    sets = [
        CandidateSet(f"in{i}", torch.rand(3, 16, 16), {f"in{i}/{k}": torch.rand(3, 16, 16) for k in range(3)})
        for i in range(2)
    ]
    selected = select_pairs(sets, ensemble, budget=4, random_fraction=0.25, seed=0)
    assert len(selected) == 4
    assert [pair.reason for pair in selected].count("random") == 1
    for pair in selected:
        assert pair.a_key.split("/")[0] == pair.b_key.split("/")[0] == pair.input_id
        assert pair.p_a_beats_b is not None and 0 < pair.p_a_beats_b < 1
    p, spread = ensemble.preference(
        torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    )
    assert p.shape == spread.shape == (2,)
    assert {pair.reason for pair in select_pairs(sets, None, budget=3)} == {"cold_start"}


def test_max_per_input_spreads_the_informative_picks_over_inputs():
    # Input "hot" has the three most uncertain pairs; input "cool" has weaker but non-zero disagreement.
    rewards = {
        "h0": torch.tensor([2.0, -2.0, 0.0]),
        "h1": torch.tensor([-2.0, 2.0, 0.0]),
        "h2": torch.tensor([0.0, 0.0, 3.0]),
        "k0": torch.tensor([0.5, -0.5, 0.0]),
        "k1": torch.tensor([-0.5, 0.5, 0.0]),
        "k2": torch.tensor([0.0, 0.0, 0.8]),
    }
    pairs = all_pairs({"hot": ["h0", "h1", "h2"], "cool": ["k0", "k1", "k2"]})
    uncapped = select_pairs_from_rewards(pairs, rewards, budget=3, random_fraction=0.0)
    assert {pair.input_id for pair in uncapped} == {"hot"}
    capped = select_pairs_from_rewards(pairs, rewards, budget=3, random_fraction=0.0, max_per_input=2)
    assert [pair.input_id for pair in capped].count("hot") == 2
    assert [pair.input_id for pair in capped].count("cool") == 1
    assert capped[0].score >= capped[1].score  # the best pair of each input still comes first
    # When the cap cannot fill the budget, the capped-out pairs fill it, best first.
    tight = select_pairs_from_rewards(pairs, rewards, budget=4, random_fraction=0.0, max_per_input=1)
    assert [pair.input_id for pair in tight] == ["hot", "cool", "hot", "hot"]
    assert len({(p.a_key, p.b_key) for p in tight}) == 4


def test_acquisitions_rank_a_split_above_a_confident_disagreement():
    # "split": members split on the winner (mean p 0.5); "sure": all members say a wins, by different margins.
    rewards = {
        "s0": torch.tensor([1.5, -1.5, 0.0]),
        "s1": torch.zeros(3),
        "c0": torch.tensor([2.0, 4.0, 7.0]),
        "c1": torch.zeros(3),
    }
    pairs = all_pairs({"split": ["s0", "s1"], "sure": ["c0", "c1"]})
    stats = {
        name: {
            p.input_id: p.score
            for p in select_pairs_from_rewards(
                pairs, rewards, budget=2, random_fraction=0.0, acquisition=name
            )
        }
        for name in ACQUISITIONS
    }
    assert stats["information"]["split"] > stats["information"]["sure"]
    assert stats["entropy"]["split"] > stats["entropy"]["sure"]
    # information is BALD damped by 4 p (1 - p): never above BALD, equal where the mean preference is 0.5
    assert stats["information"]["sure"] < stats["bald"]["sure"]
    assert abs(stats["information"]["split"] - stats["bald"]["split"]) < 1e-6
    with pytest.raises(ValueError, match="acquisition"):
        select_pairs_from_rewards(pairs, rewards, budget=1, acquisition="spread")


def test_selection_config_presets_and_per_input_cap():
    assert set(SELECTION_PRESETS) >= {"bald", "small_budget"}
    assert selection_preset("bald") == SelectionConfig()
    config = SelectionConfig(spread=2.0)
    assert config.max_per_input(new_pairs=125, n_inputs=400) == 1
    assert config.max_per_input(new_pairs=1000, n_inputs=400) == 5
    assert SelectionConfig(spread=0.0).max_per_input(100, 10) is None
    for bad in ({"acquisition": "spread"}, {"random_fraction": 1.5}, {"spread": -1.0}, {"cold_start": 0.0}):
        with pytest.raises(ValueError):
            SelectionConfig(**bad)
    with pytest.raises(ValueError, match="preset"):
        selection_preset("nope")
