"""Two reward models scored on the same held-out judgments: the better-trained one wins, the judgments are
those neither trained on, and too few of them say nothing."""

from __future__ import annotations

import dataclasses

import pytest

from reward_model.compare import (
    MIN_SHARED_JUDGMENTS,
    accuracy_difference_se,
    compare_on_shared_judgments,
    shared_rows,
    validation_inputs,
)
from reward_model.data import ImageBank
from reward_model.train import train
from tests.reward_model.test_train import CONFIG, save_pngs
from tests.reward_model.toy import make_toy_data, oracle_rows


def _trained(rows, images, out_dir, **changes):
    config = dataclasses.replace(CONFIG, **changes)
    train(config, judgments=rows, images=ImageBank(images, resolution=16), out_dir=out_dir, progress=False)
    return out_dir


def test_the_better_model_wins_on_judgments_neither_trained_on(tmp_path, toy_oracle_factory):
    data = make_toy_data(24, seed=3)
    reliable = {"r": toy_oracle_factory("reliable", 1)}
    old_rows = oracle_rows(data, reliable, judgments_per_annotator=40, seed=1)
    new_rows = oracle_rows(data, reliable, judgments_per_annotator=400, seed=2)
    save_pngs(data.images, tmp_path / "storage")
    # The model in use: two steps on a few judgments (near chance); the new one: trained on everything since.
    in_use = _trained(old_rows, data.images, tmp_path / "in_use", max_steps=2, eval_every=1)
    trained_on = old_rows + new_rows
    new = _trained(trained_on, data.images, tmp_path / "new")

    shared = shared_rows(new_dir=new, trained_on=trained_on, unseen=new_rows)
    held_out_inputs = {row.input_id for row in shared}
    assert shared and all(row in new_rows for row in shared)
    # Only the inputs the new model held out: it trained on none of them.
    assert len(held_out_inputs) < len({row.input_id for row in new_rows})

    result = compare_on_shared_judgments(
        new_dir=new,
        in_use_dir=in_use,
        trained_on=trained_on,
        unseen=new_rows,
        images_root=tmp_path / "storage",
    )
    assert result.judgments >= MIN_SHARED_JUDGMENTS
    assert result.new is not None and result.in_use is not None
    assert result.new > result.in_use + 0.1, result
    # the difference is the discordant judgments' (each model right where the other is wrong), and it is
    # more than twice its paired standard error
    assert result.only_new is not None and result.only_in_use is not None
    difference = (result.only_new - result.only_in_use) / result.judgments
    assert abs(difference - (result.new - result.in_use)) < 1e-6
    se = accuracy_difference_se(
        judgments=result.judgments, only_new=result.only_new, only_in_use=result.only_in_use
    )
    assert 0 < se < difference / 2


def test_the_standard_error_of_a_paired_difference_counts_only_the_discordant_judgments():
    # 100 judgments, 10 only the new model ranks right and 10 only the one in use: no difference, and the
    # error of sqrt(20) / 100; models that agree everywhere cannot be told apart by the judgments at all
    assert accuracy_difference_se(judgments=100, only_new=10, only_in_use=10) == pytest.approx(0.2**0.5 / 10)
    assert accuracy_difference_se(judgments=100, only_new=0, only_in_use=0) == 0.0
    # all the discordant ones on one side: a difference of 0.1 whose error is smaller than for 10 / 10
    assert accuracy_difference_se(judgments=100, only_new=10, only_in_use=0) < 0.2**0.5 / 10


def test_too_few_shared_judgments_decide_nothing(tmp_path, toy_oracle_factory):
    data = make_toy_data(12, seed=4)
    reliable = {"r": toy_oracle_factory("reliable", 1)}
    rows = oracle_rows(data, reliable, judgments_per_annotator=200, seed=1)
    save_pngs(data.images, tmp_path / "storage")
    model = _trained(rows, data.images, tmp_path / "m", max_steps=5, eval_every=5)
    # The model in use held out nothing, so only the 3 judgments made since it was trained are shared.
    in_use = _trained(rows[3:], data.images, tmp_path / "in_use", max_steps=5, eval_every=5, val_fraction=0.0)
    result = compare_on_shared_judgments(
        new_dir=model, in_use_dir=in_use, trained_on=rows, unseen=rows[:3], images_root=tmp_path / "storage"
    )
    assert result.judgments < MIN_SHARED_JUDGMENTS
    assert result.new is None and result.in_use is None


def test_judgments_on_faces_both_models_held_out_are_shared_whenever_they_were_made(
    tmp_path, toy_oracle_factory
):
    """The stable split holds out the same faces for the model in use and the new one, so their earlier
    judgments count too; a judgment the model in use trained on never does."""
    data = make_toy_data(24, seed=5)
    reliable = {"r": toy_oracle_factory("reliable", 1)}
    old_rows = oracle_rows(data, reliable, judgments_per_annotator=150, seed=1)
    new_rows = oracle_rows(data, reliable, judgments_per_annotator=60, seed=2)
    save_pngs(data.images, tmp_path / "storage")
    # Seeded apart, as the loop seeds each round's model: the split has its own seed.
    in_use = _trained(old_rows, data.images, tmp_path / "in_use", max_steps=2, eval_every=1, seed=1)
    trained_on = old_rows + new_rows
    new = _trained(trained_on, data.images, tmp_path / "new", max_steps=2, eval_every=1, seed=2)

    in_use_held_out = validation_inputs(in_use, old_rows)
    new_held_out = validation_inputs(new, trained_on)
    assert in_use_held_out and in_use_held_out <= new_held_out

    shared = shared_rows(new_dir=new, trained_on=trained_on, unseen=new_rows, in_use_dir=in_use)
    old_shared = [row for row in shared if row in set(old_rows)]
    assert old_shared, "the judgments made before the model in use was trained, on faces both held out"
    assert all(row.input_id in in_use_held_out for row in old_shared)
    assert {row.input_id for row in shared} <= new_held_out
    # Without the model in use's split only the newer judgments count: fewer of them.
    assert len(shared) > len(shared_rows(new_dir=new, trained_on=trained_on, unseen=new_rows))
