import pytest

from annotation_web.labeling.agreement import agreement_with_majority, krippendorff_alpha_nominal


def test_alpha_matches_krippendorffs_worked_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", nominal data, 4 coders, 12 units.
    units = {
        1: [1, 1, 1],
        2: [2, 2, 3, 2],
        3: [3, 3, 3, 3],
        4: [3, 3, 3, 3],
        5: [2, 2, 2, 2],
        6: [1, 2, 3, 4],
        7: [4, 4, 4, 4],
        8: [1, 1, 2, 1],
        9: [2, 2, 2, 2],
        10: [5, 5, 5],
        11: [1, 1],
        12: [3],
    }
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=0.001)


def test_alpha_is_one_for_perfect_agreement_and_low_for_random():
    assert krippendorff_alpha_nominal({1: ["a", "a"], 2: ["b", "b"], 3: ["tie", "tie"]}) == pytest.approx(1.0)
    assert krippendorff_alpha_nominal({1: ["a", "b"], 2: ["b", "a"], 3: ["tie", "both_bad"]}) < 0
    assert krippendorff_alpha_nominal({1: ["a"], 2: ["b"]}) is None


def test_agreement_with_majority_of_the_others():
    judgments = [
        (1, "x", "a"),
        (1, "y", "a"),
        (1, "z", "b"),
        (2, "x", "tie"),
        (2, "y", "tie"),
        (2, "z", "tie"),
    ]
    stats = agreement_with_majority(judgments)
    assert stats["x"]["compared"] == 1 and stats["x"]["rate"] == 1.0  # pair 1: others split a/b, not counted
    assert stats["z"]["compared"] == 2 and stats["z"]["agreed"] == 1
