"""Training on oracle judgments of toy images: the model learns the oracle's order; artifact, CLI, resume."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from reward_model.data import ImageBank, ImageLookupError, keys_of, split_by_input
from reward_model.ensemble import RewardEnsemble
from reward_model.errors import ExportFormatError
from reward_model.export import write_judgments
from reward_model.model import RewardConfig, RewardModel
from reward_model.train import TrainConfig, learning_rate_factor, main, train
from tests.reward_model.toy import NOISE_LEVELS, make_toy_data, oracle_rows

CONFIG = TrainConfig(
    reward=RewardConfig(
        resolution=16, channels=(8, 16), ensemble_size=3, residual_input=True, group_norm=True
    ),
    max_steps=150,
    batch_size=32,
    learning_rate=3e-3,
    eval_every=50,
    patience=3,
    val_fraction=0.2,
)


@pytest.fixture(scope="module")
def trained(toy_data, toy_oracle_factory):
    torch.set_num_threads(1)
    annotators = {"reliable": toy_oracle_factory("reliable", 1), "noisy": toy_oracle_factory("noisy", 2)}
    rows = oracle_rows(toy_data, annotators, judgments_per_annotator=300)
    bank = ImageBank(toy_data.images, resolution=16)
    result = train(CONFIG, judgments=rows, images=bank, progress=False)
    return result, rows, bank


def test_split_by_input_keeps_each_input_on_one_side(toy_data, toy_oracle_factory):
    rows = oracle_rows(toy_data, {"r": toy_oracle_factory("reliable")}, judgments_per_annotator=200)
    train_rows, val_rows = split_by_input(rows, val_fraction=0.25, seed=0)
    assert len(train_rows) + len(val_rows) == len(rows)
    assert not {row.input_id for row in train_rows} & {row.input_id for row in val_rows}
    assert val_rows


def test_the_stable_split_keeps_a_held_out_face_held_out_as_faces_and_judgments_accumulate(
    toy_oracle_factory,
):
    """What the loop's comparison of successive reward models stands on; a permutation reshuffles instead."""
    oracle = {"r": toy_oracle_factory("reliable")}
    few = oracle_rows(make_toy_data(20, seed=7), oracle, judgments_per_annotator=100, seed=1)
    more = few + oracle_rows(make_toy_data(60, seed=7), oracle, judgments_per_annotator=300, seed=2)

    def held_out(rows, method):
        return {row.input_id for row in split_by_input(rows, val_fraction=0.2, seed=0, method=method)[1]}

    few_inputs = {row.input_id for row in few}
    assert held_out(more, "stable") & few_inputs == held_out(few, "stable")
    assert held_out(more, "permutation") & few_inputs != held_out(few, "permutation")
    assert 0.05 < len(held_out(more, "stable")) / len({row.input_id for row in more}) < 0.4
    with pytest.raises(ValueError, match="split"):
        split_by_input(few, val_fraction=0.2, seed=0, method="random")


def test_a_config_saved_before_the_stable_split_reads_back_as_the_permutation_it_used():
    saved = {**CONFIG.to_dict(), "seed": 3}
    del saved["split"], saved["split_seed"]
    old = TrainConfig.from_dict(saved)
    assert (old.split, old.split_seed) == ("permutation", 3)
    assert TrainConfig.from_dict(CONFIG.to_dict()).split == "stable"
    with pytest.raises(ValueError, match="split"):
        dataclasses.replace(CONFIG, split="random")


def test_model_trained_on_oracle_judgments_ranks_unseen_faces_in_the_oracle_order(trained):
    result, _, _ = trained
    fresh = make_toy_data(12, seed=99)  # faces never seen in training
    model = result.model.eval()
    correct = total = 0
    with torch.no_grad():
        for input_id, keys in fresh.candidates.items():
            lq = fresh.images[f"lq/{input_id}.png"].expand(len(keys), -1, -1, -1)
            rewards = model(lq, torch.stack([fresh.images[key] for key in keys]))
            for i in range(len(keys)):
                for j in range(i + 1, len(keys)):  # keys are best first
                    correct += int(rewards[i] > rewards[j])
                    total += 1
    assert correct / total > 0.8  # chance is 0.5
    assert result.metrics["val_pairwise_accuracy"] > 0.75


def test_uncertainty_is_higher_on_near_equal_pairs(trained):
    result, _, _ = trained
    ensemble = RewardEnsemble(result.model)
    fresh = make_toy_data(24, seed=123)
    generator = torch.Generator().manual_seed(5)
    near_spread, far_spread = [], []
    for input_id in fresh.candidates:
        hq = fresh.hq[input_id].unsqueeze(0)
        lq = fresh.images[f"lq/{input_id}.png"].unsqueeze(0)
        level = NOISE_LEVELS[1]
        twin_a = (hq + level * torch.randn(hq.shape, generator=generator)).clamp(-1, 1)
        twin_b = (hq + level * torch.randn(hq.shape, generator=generator)).clamp(-1, 1)
        best = (hq + NOISE_LEVELS[0] * torch.randn(hq.shape, generator=generator)).clamp(-1, 1)
        worst = (hq + NOISE_LEVELS[-1] * torch.randn(hq.shape, generator=generator)).clamp(-1, 1)
        near_spread.append(ensemble.preference(lq, twin_a, twin_b)[1])
        p_far, spread_far = ensemble.preference(lq, best, worst)
        far_spread.append(spread_far)
    assert torch.cat(near_spread).mean() > torch.cat(far_spread).mean() + 0.05


def test_metrics_and_annotator_weights(trained, toy_data, toy_oracle_factory):
    result, _, _ = trained
    metrics = result.metrics
    for key in (
        "val_pairwise_accuracy",
        "val_log_loss",
        "val_calibration_error",
        "n_train_judgments",
        "tie_strength",
    ):
        assert metrics[key] is not None
    assert 0.0 <= metrics["val_calibration_error"] <= 1.0
    assert metrics["n_train_inputs"] + metrics["n_val_inputs"] == 40
    assert set(metrics["annotator_reliability"]) == {"reliable", "noisy"}


def test_spammer_gets_a_lower_weight_than_careful_annotators(toy_data, toy_oracle_factory):
    annotators = {
        "careful1": toy_oracle_factory("reliable", 1),
        "careful2": toy_oracle_factory("reliable", 2),
        "spammer": toy_oracle_factory("spammer", 3),
    }
    rows = oracle_rows(toy_data, annotators, judgments_per_annotator=250, seed=4)
    config = dataclasses.replace(CONFIG, max_steps=100, val_fraction=0.0, reliability_prior_weight=0.5)
    result = train(config, judgments=rows, images=ImageBank(toy_data.images, resolution=16), progress=False)
    weights = {name: values["relative_weight"] for name, values in result.reliability.items()}
    assert weights["spammer"] < 0.6 * min(weights["careful1"], weights["careful2"])


def save_pngs(images: dict[str, torch.Tensor], root: Path) -> None:
    for key, image in images.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        array = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(array).save(path)


def test_command_line_trains_writes_an_artifact_and_resumes(tmp_path, toy_oracle_factory, capsys):
    data = make_toy_data(10, seed=7)
    rows = oracle_rows(data, {"r": toy_oracle_factory("reliable")}, judgments_per_annotator=120)
    rows += oracle_rows(
        data, {"g": toy_oracle_factory("reliable", 9)}, judgments_per_annotator=20, is_gold=True
    )
    save_pngs(data.images, tmp_path / "storage")
    write_judgments(tmp_path / "export.jsonl", rows)
    out = tmp_path / "artifact"
    args = [
        "--judgments",
        str(tmp_path / "export.jsonl"),
        "--images",
        str(tmp_path / "storage"),
        "--out",
        str(out),
    ]
    assert (
        main([*args, "--config", "tiny", "--max-steps", "10", "--eval-every", "5", "--batch-size", "8"]) == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 10 and metrics["gold_pair_accuracy"] is not None
    assert metrics["n_gold_judgments"] == 20
    assert json.loads(capsys.readouterr().out)["steps"] == 10
    model = RewardModel.from_pretrained(out)
    assert model.config.ensemble_size == 3
    # A second run with a larger budget resumes from the checkpoint instead of starting over.
    assert (
        main([*args, "--config", "tiny", "--max-steps", "15", "--eval-every", "5", "--batch-size", "8"]) == 0
    )
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["steps"] == 15
    with pytest.raises(ValueError, match="different training config"):
        main([*args, "--config", "tiny", "--max-steps", "20", "--eval-every", "5", "--batch-size", "4"])


def test_command_line_reports_bad_exports_and_missing_images(tmp_path, toy_oracle_factory):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ExportFormatError, match="no judgments"):
        main(
            [
                "--judgments",
                str(tmp_path / "empty.jsonl"),
                "--images",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
            ]
        )
    data = make_toy_data(2, seed=3)
    write_judgments(
        tmp_path / "e.jsonl",
        oracle_rows(data, {"r": toy_oracle_factory("reliable")}, judgments_per_annotator=3),
    )
    with pytest.raises(ImageLookupError, match="not found"):
        main(
            [
                "--judgments",
                str(tmp_path / "e.jsonl"),
                "--images",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
            ]
        )


def test_image_keys_cannot_escape_the_image_root(tmp_path):
    with pytest.raises(ImageLookupError, match="outside"):
        ImageBank.from_directory(tmp_path / "root", ["../secret.png"], 16)
    assert keys_of([]) == []


def test_early_stopping_waits_for_patience_and_min_steps(toy_data, toy_oracle_factory):
    rows = oracle_rows(toy_data, {"r": toy_oracle_factory("reliable")}, judgments_per_annotator=100)
    bank = ImageBank(toy_data.images, resolution=16)
    # With a zero learning rate the validation score never improves after the first evaluation.
    frozen = dataclasses.replace(
        CONFIG,
        learning_rate=0.0,
        reliability_learning_rate=0.0,
        eval_every=5,
        patience=2,
        max_steps=100,
        batch_size=4,
    )
    assert train(frozen, judgments=rows, images=bank, progress=False).metrics["steps"] == 15
    patient = dataclasses.replace(frozen, min_steps=40)
    result = train(patient, judgments=rows, images=bank, progress=False)
    assert result.metrics["steps"] == 40 and result.metrics["stopped_early"]


def test_batches_grouped_by_input_train_too(toy_data, toy_oracle_factory):
    rows = oracle_rows(toy_data, {"r": toy_oracle_factory("reliable")}, judgments_per_annotator=200)
    config = dataclasses.replace(CONFIG, group_by_input=True, max_steps=20, eval_every=10)
    result = train(config, judgments=rows, images=ImageBank(toy_data.images, resolution=16), progress=False)
    assert result.metrics["steps"] == 20 and result.metrics["val_pairwise_accuracy"] is not None


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    config = dataclasses.replace(
        CONFIG, lr_schedule="cosine", max_steps=110, warmup_steps=10, min_lr_ratio=0.1
    )
    factors = [learning_rate_factor(config, step) for step in range(config.max_steps)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert max(factors) == pytest.approx(1.0)
    after_warmup = factors[10:]
    assert all(later <= earlier for earlier, later in zip(after_warmup, after_warmup[1:]))
    assert factors[60] == pytest.approx(0.55) and factors[-1] == pytest.approx(0.1, abs=1e-3)
    constant = dataclasses.replace(config, lr_schedule="constant")
    assert {learning_rate_factor(constant, step) for step in range(0, 110, 7)} == {1.0}
    with pytest.raises(ValueError, match="lr_schedule"):
        learning_rate_factor(dataclasses.replace(config, lr_schedule="step"), 0)


def test_training_configs_round_trip_and_refuse_unknown_fields():
    assert TrainConfig.from_dict(json.loads(json.dumps(CONFIG.to_dict()))) == CONFIG
    # a misspelt key used to be dropped silently, training with the default it meant to change
    with pytest.raises(ValueError, match=r"reward training config has unknown fields: \['max_stepz'\]"):
        TrainConfig.from_dict({**CONFIG.to_dict(), "max_stepz": 10})
    with pytest.raises(ValueError, match="reward config has unknown fields"):
        TrainConfig.from_dict({"reward": {**CONFIG.reward.to_dict(), "chanels": [4]}})
