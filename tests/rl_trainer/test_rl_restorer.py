"""RL on the real ``restorer.Restorer`` (tiny test config) and a real ``reward_model.RewardModel`` artifact."""

import json

import pytest
import torch
import torch.nn.functional as F

from restorer import sampling
from restorer.degradations import apply_degradation, sample_degradation
from restorer.images import tensor_to_pil
from restorer.model import Restorer, tiny_test_config
from reward_model.model import CONFIG_PRESETS, RewardModel
from rl_trainer.config import RLConfig
from rl_trainer.losses import gaussian_log_prob
from rl_trainer.manifest import ManifestError, load_inputs, read_manifest, split_entries, write_manifest
from rl_trainer.restorer_steps import RestorerSampling, trajectory_step_means
from rl_trainer.rewards import learned_reward, perceptual_reward_distance
from rl_trainer.train import STOP_COMPLETED, main, train

RESOLUTION = 32


def smooth_faces(count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 4, 4, generator=generator) * 1.6 - 0.8
    return F.interpolate(coarse, size=(RESOLUTION, RESOLUTION), mode="bicubic", align_corners=False).clamp(
        -1, 1
    )


def artifact_paths(artifacts) -> dict:
    """``train``'s arguments for the module's restorer, reward model and inputs (no progress bar)."""
    return {
        "policy_dir": artifacts / "restorer",
        "reward_dir": artifacts / "reward",
        "inputs_manifest": artifacts / "inputs.jsonl",
        "progress_bar": False,
    }


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("rl_artifacts")
    torch.manual_seed(0)
    Restorer(tiny_test_config()).save_pretrained(root / "restorer", metrics={"psnr": 1.0})
    RewardModel(CONFIG_PRESETS["tiny"]).save_pretrained(root / "reward")
    rows = []
    for index, hq in enumerate(smooth_faces(6, seed=3)):
        params = sample_degradation("gfpgan", seed=index, resolution=RESOLUTION)
        tensor_to_pil(hq).save(root / f"hq_{index}.png")
        tensor_to_pil(apply_degradation(hq, params)).save(root / f"lq_{index}.png")
        row = {"id": f"face-{index}", "lq": f"lq_{index}.png", "split": "eval" if index >= 4 else "train"}
        if index != 1:  # one input with neither HQ nor params: the fallback fidelity terms
            row.update(hq=f"hq_{index}.png", degradation=params.to_dict())
        rows.append(row)
    write_manifest(root / "inputs.jsonl", rows)
    return root


def test_batched_step_means_give_the_restorer_samplers_log_probs():
    torch.manual_seed(0)
    restorer = Restorer(tiny_test_config()).eval()
    lq = smooth_faces(3, seed=1)
    instructions = ["restore the face"] * 3
    output = sampling.sample(
        restorer, lq, instructions, num_steps=4, eta=1.0, seeds=[1, 2, 3], return_trajectory=True
    )
    means, std = trajectory_step_means(
        restorer, lq, instructions, output.trajectory, output.timesteps, eta=1.0
    )
    expected = sampling.trajectory_log_probs(
        restorer, lq, instructions, output.trajectory, output.timesteps, eta=1.0, reduction="mean"
    )
    assert torch.allclose(gaussian_log_prob(output.trajectory[:, 1:], means, std), expected, atol=1e-5)
    assert torch.allclose(output.log_probs / lq[0].numel(), expected, atol=1e-5)
    subset_means, subset_std = trajectory_step_means(
        restorer, lq, instructions, output.trajectory, output.timesteps, eta=1.0, steps=[1, 3]
    )
    assert torch.allclose(subset_means, means[:, [1, 3]], atol=1e-5) and torch.equal(subset_std, std[[1, 3]])


def test_manifest_inputs_load_with_params_instructions_and_split(artifacts):
    entries = read_manifest(artifacts / "inputs.jsonl")
    train_entries, eval_entries = split_entries(entries, eval_fraction=0.5)
    assert [e.id for e in eval_entries] == ["face-4", "face-5"]
    inputs = load_inputs(train_entries, RESOLUTION)
    assert inputs.lq.shape == (4, 3, RESOLUTION, RESOLUTION)
    assert inputs.has_hq.tolist() == [True, False, True, True]
    assert inputs.degradations[1] is None and inputs.degradations[0].preset == "gfpgan"
    assert "restore" in inputs.instructions[0]


def test_bad_manifests_get_clear_errors(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"lq": "missing.png"}\n')
    with pytest.raises(ManifestError, match="m.jsonl:1: file not found"):
        read_manifest(tmp_path / "m.jsonl")
    (tmp_path / "m.jsonl").write_text('{"lq": "a.png"}\n{oops\n')
    with pytest.raises(ManifestError, match="m.jsonl:2: not valid JSON"):
        read_manifest(tmp_path / "m.jsonl")
    (tmp_path / "m.json").write_text(json.dumps({"inputs": [{"hq": "x.png"}]}))
    with pytest.raises(ManifestError, match="'lq'.*is required"):
        read_manifest(tmp_path / "m.json")
    (tmp_path / "empty.jsonl").write_text("\n# nothing\n")
    with pytest.raises(ManifestError, match="lists no inputs"):
        read_manifest(tmp_path / "empty.jsonl")


def test_train_writes_a_restorer_artifact_that_records_its_lineage(artifacts, tmp_path):
    config = RLConfig.preset(
        "test", max_steps=2, eval_every=1, checkpoint_every=1, entropy_seeds=2, perceptual_weight=0.5
    )
    progress = []
    result = train(
        config,
        out_dir=tmp_path / "tuned",
        on_progress=lambda step, total, metrics: progress.append((step, total, sorted(metrics))),
        **artifact_paths(artifacts),
    )
    assert result.stop_reason == STOP_COMPLETED and result.steps == 2
    assert [(step, total) for step, total, _ in progress] == [(1, 2), (2, 2)]
    logged = progress[0][2]
    for name in (
        "reward/learned",
        "reward/consistency",
        "reward/perceptual",
        "reward/total",
        "kl",
        "eval/held_out",
        "samples_per_s",
    ):
        assert name in logged
    assert result.entropy_before is not None and result.entropy_after is not None

    tuned = Restorer.from_pretrained(tmp_path / "tuned")
    parent = Restorer.from_pretrained(artifacts / "restorer")
    changed = [
        name
        for name, weight in tuned.state_dict().items()
        if not torch.equal(weight, parent.state_dict()[name])
    ]
    assert changed, "RL did not change the policy"
    rl = Restorer.read_metrics(tmp_path / "tuned")["rl"]
    assert rl["parent_restorer"] == str((artifacts / "restorer").resolve())
    assert rl["reward_model"] == str((artifacts / "reward").resolve())
    assert rl["rl_config"] == config.to_dict()
    assert rl["held_out_evaluator"] == "oracle_neg_lpips_randtrunk"
    # the perceptual reward term climbs a distance of its own, so the guard's evaluator stays held out
    assert rl["perceptual_reward"] == "lpips_randtrunk_seed1"
    assert rl["eval_inputs"] == 2 and rl["train_inputs"] == 4


def test_keep_best_on_the_real_restorer_records_the_step_it_handed_back(artifacts, tmp_path):
    config = RLConfig.preset(
        "test",
        max_steps=2,
        eval_every=1,
        checkpoint_every=1,
        entropy_seeds=0,
        eval_entropy_seeds=2,
        keep_best=True,
        keep_best_entropy_ratio=0.99,
        perceptual_weight=0.5,
    )
    result = train(config, out_dir=tmp_path / "tuned", **artifact_paths(artifacts))
    first = result.evaluations[0]
    assert first["eval/held_out_win"] == 0.5 and first["eval/entropy_ratio"] == 1.0
    assert first["eval/entropy"] > 0  # the restorer's seeds give different restorations
    assert all("eval/entropy_ratio" in evaluation for evaluation in result.evaluations)
    rl = Restorer.read_metrics(tmp_path / "tuned")["rl"]
    assert rl["selected_step"] == result.selected_step
    assert result.selected_step in [int(evaluation["step"]) for evaluation in result.evaluations]
    assert f"kept the policy of step {result.selected_step}" in rl["message"]


def test_command_line_with_lora(artifacts, tmp_path, capsys):
    config_path = tmp_path / "rl.json"
    RLConfig.preset("test", max_steps=1, use_lora=True, entropy_seeds=0).save(config_path)
    code = main(
        [
            "--policy", str(artifacts / "restorer"),
            "--reward", str(artifacts / "reward"),
            "--inputs", str(artifacts / "inputs.jsonl"),
            "--out", str(tmp_path / "lora"),
            "--config", str(config_path),
        ]
    )  # fmt: skip
    assert code == 0
    assert '"stop_reason": "completed"' in capsys.readouterr().out
    tuned = Restorer.from_pretrained(tmp_path / "lora")  # adapters merged: a plain restorer artifact
    parent = Restorer.from_pretrained(artifacts / "restorer")
    assert not torch.equal(tuned.unet.conv_in.weight, parent.unet.conv_in.weight)
    assert torch.equal(tuned.integrator.queries, parent.integrator.queries)  # LoRA went into the UNet only


def test_resume_after_a_crash_equals_an_uninterrupted_run_on_the_real_restorer(artifacts, tmp_path):
    config = RLConfig.preset(
        "test",
        max_steps=2,
        inputs_per_step=1,
        group_size=2,
        rollout_steps=2,
        inner_epochs=1,
        eval_every=1,
        eval_inputs=1,
        eval_steps=2,
        checkpoint_every=1,
        entropy_seeds=0,
    )
    paths = artifact_paths(artifacts)
    straight = train(config, out_dir=tmp_path / "straight", **paths)

    def crash(step, total, metrics):
        if step == 2:
            raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        train(config, out_dir=tmp_path / "resumed", on_progress=crash, **paths)
    resumed = train(config, out_dir=tmp_path / "resumed", **paths)

    assert [h["reward/total"] for h in resumed.history] == [h["reward/total"] for h in straight.history]
    assert resumed.evaluations == straight.evaluations
    a = Restorer.from_pretrained(tmp_path / "straight").state_dict()
    b = Restorer.from_pretrained(tmp_path / "resumed").state_dict()
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_final_images_recompute_the_samplers_images_with_a_gradient_to_the_restorer():
    torch.manual_seed(0)
    restorer = Restorer(tiny_test_config()).eval()
    lq = smooth_faces(2, seed=4)
    instructions = ["restore the face"] * 2
    with torch.no_grad():
        output = sampling.sample(
            restorer, lq, instructions, num_steps=3, eta=1.0, seeds=[7, 8], return_trajectory=True
        )
    images, means, std = RestorerSampling().final_images(
        restorer, lq, instructions, output.trajectory, output.timesteps, eta=1.0
    )
    assert torch.allclose(images, output.images, atol=1e-5)
    assert means.shape == (2, 1, 3, RESOLUTION, RESOLUTION) and std.shape == (1,)
    images.mean().backward()
    assert restorer.unet.conv_out.weight.grad is not None
    assert float(restorer.unet.conv_out.weight.grad.abs().sum()) > 0
    assert restorer.integrator.queries.grad is not None  # the condition is recomputed with gradients too


def test_reward_backprop_trains_the_real_restorer_and_records_the_update(artifacts, tmp_path):
    config = RLConfig.preset(
        "test",
        policy_update="reward_backprop",
        max_steps=2,
        eval_every=1,
        entropy_seeds=0,
        perceptual_weight=0.5,
        perceptual_trunks=2,
        learned_reward_pessimism=1.0,
    )
    result = train(config, out_dir=tmp_path / "tuned", **artifact_paths(artifacts))
    assert result.stop_reason == STOP_COMPLETED and result.steps == 2
    assert {"loss/reward", "kl", "reward/learned", "reward/consistency", "reward/perceptual"} <= set(
        result.history[-1]
    )
    tuned = Restorer.from_pretrained(tmp_path / "tuned")
    parent = Restorer.from_pretrained(artifacts / "restorer")
    assert not torch.equal(tuned.unet.conv_out.weight, parent.unet.conv_out.weight)
    rl = Restorer.read_metrics(tmp_path / "tuned")["rl"]
    assert rl["rl_config"]["policy_update"] == "reward_backprop"
    assert rl["perceptual_reward"] == "lpips_randtrunk_seed1+lpips_randtrunk_seed2"


@pytest.mark.parametrize(("fit_steps", "confidence"), [(1, 0.0), (3, 0.0), (1, 1.0)])
def test_reward_ranked_trains_the_real_restorer_towards_the_reward_models_choice(
    artifacts, tmp_path, fit_steps, confidence
):
    config = RLConfig.preset(
        "test",
        policy_update="reward_ranked",
        max_steps=2,
        eval_every=1,
        entropy_seeds=0,
        kl_weight=0.1,
        ranked_candidates="mean",
        ranked_fit_steps=fit_steps,
        ranked_edit_confidence=confidence,
    )
    result = train(config, out_dir=tmp_path / "tuned", **artifact_paths(artifacts))
    assert result.stop_reason == STOP_COMPLETED and result.steps == 2
    last = result.history[-1]
    assert {"loss/fit", "kl", "ranked/strength", "ranked/edited_share", "ranked/gain"} <= set(last)
    assert last["ranked/gain"] >= 0  # the best candidate scores at least what the samples do on average
    assert (
        0
        <= last["ranked/held_back_share"]
        <= last["ranked/held_back_share"] + last["ranked/edited_share"]
        <= 1
    )
    tuned = Restorer.from_pretrained(tmp_path / "tuned")
    parent = Restorer.from_pretrained(artifacts / "restorer")
    assert not torch.equal(tuned.unet.conv_out.weight, parent.unet.conv_out.weight)
    assert Restorer.read_metrics(tmp_path / "tuned")["rl"]["rl_config"]["ranked_edit_strengths"] == list(
        config.ranked_edit_strengths
    )


def test_the_pessimistic_learned_reward_is_the_mean_less_the_member_spread_and_keeps_a_gradient(artifacts):
    reward_model = RewardModel.from_pretrained(artifacts / "reward").eval().requires_grad_(False)
    lq, images = smooth_faces(3, seed=5), smooth_faces(3, seed=6)
    members = reward_model.member_rewards(lq, images).detach()
    assert torch.allclose(learned_reward(reward_model)(lq, images), members.mean(dim=1), atol=1e-6)
    # the members as they are, whatever the pessimism: for rules about their agreement on a difference
    assert torch.allclose(learned_reward(reward_model, pessimism=2.0).members(lq, images), members, atol=1e-6)
    leaf = images.clone().requires_grad_(True)
    pessimistic = learned_reward(reward_model, pessimism=2.0)(lq, leaf)
    expected = members.mean(dim=1) - 2.0 * members.std(dim=1, unbiased=False)
    assert torch.allclose(pessimistic.detach(), expected, atol=1e-6)
    assert (pessimistic.detach() < members.mean(dim=1)).all()  # the members never agree exactly
    pessimistic.sum().backward()
    assert leaf.grad is not None and float(leaf.grad.abs().sum()) > 0


def test_the_perceptual_reward_averages_seeded_trunks_and_never_uses_the_evaluators():
    from restorer.metrics import PerceptualDistance

    x = smooth_faces(2, seed=7)
    near = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    ensemble = perceptual_reward_distance(3)
    assert ensemble.name == "lpips_randtrunk_seed1+lpips_randtrunk_seed2+lpips_randtrunk_seed3"
    members = torch.stack([PerceptualDistance(trunk_seed=seed)(x, near) for seed in (1, 2, 3)])
    assert torch.allclose(ensemble(x, near), members.mean(dim=0))
    assert perceptual_reward_distance(1).name == "lpips_randtrunk_seed1"
    assert not torch.allclose(ensemble(x, near), PerceptualDistance()(x, near))
