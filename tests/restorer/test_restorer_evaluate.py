import torch

from restorer.evaluate import EvaluationSet, evaluate, synthetic_evaluation_set
from restorer.model import Restorer, tiny_test_config


def test_evaluation_table_has_baselines_metrics_and_entropy():
    data = synthetic_evaluation_set(3, resolution=32)
    assert data.hq.shape == data.lq.shape == (3, 3, 32, 32)
    torch.manual_seed(0)
    model = Restorer(tiny_test_config(block_out_channels=(8, 16)))
    table = evaluate(
        {"tiny": model}, data, num_steps=2, entropy_seeds=2, entropy_inputs=2, include_classical=True
    )
    assert [row.method for row in table.rows] == ["bicubic", "classical", "tiny"]
    bicubic, _, tiny = table.rows
    assert {"psnr", "ssim", table.perceptual_name, "solution_entropy"} <= set(tiny.metrics)
    assert table.perceptual_name in {"lpips_alex", "lpips_randtrunk"}
    assert bicubic.metrics["solution_entropy"] == 0.0
    assert tiny.metrics["solution_entropy"] > 0.0  # different seeds give different samples
    assert tiny.sampling_images_per_second is not None and tiny.sampling_images_per_second > 0
    text = table.format()
    assert "bicubic" in text and table.perceptual_name in text and "LPIPS" not in text


def test_a_perfect_method_scores_perfectly():
    hq = torch.rand(2, 3, 32, 32) * 2 - 1
    table = evaluate({}, EvaluationSet(hq, hq.clone(), ["a", "b"], "identity"), entropy_inputs=2)
    (row,) = table.rows
    assert row.metrics["psnr"] > 90 and abs(row.metrics["ssim"] - 1) < 1e-5
    assert row.metrics[table.perceptual_name] < 1e-6


def test_command_line_evaluates_a_saved_model_and_writes_json(tmp_path, capsys):
    import json

    from restorer.evaluate import main

    torch.manual_seed(0)
    Restorer(tiny_test_config(block_out_channels=(8, 16))).save_pretrained(tmp_path / "m")
    out_json = tmp_path / "table.json"
    main(
        [
            "--model",
            f"mine={tmp_path / 'm'}",
            "--count",
            "2",
            "--steps",
            "2",
            "--entropy-seeds",
            "2",
            "--json",
            str(out_json),
        ]
    )
    printed = capsys.readouterr().out
    assert "bicubic" in printed and "mine" in printed
    table = json.loads(out_json.read_text())
    assert [row["method"] for row in table["rows"]] == ["bicubic", "mine"]
