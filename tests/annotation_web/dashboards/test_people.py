"""The people figures on planted judgments with known answers: a side bias the binomial test finds and a fair
annotator it leaves alone, a too-fast annotator, medians, agreement with the majority as
`labeling.agreement` counts it, alpha per batch (Krippendorff's published example), and the gold flag."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone
from scipy.stats import binomtest

from annotation_web.accounts.models import Role
from annotation_web.dashboards.selectors import people
from annotation_web.dashboards.selectors.filters import NO_FILTERS, DashboardFilters
from annotation_web.labeling.agreement import agreement_with_majority, krippendorff_alpha_nominal
from annotation_web.labeling.models import Judgment
from tests.annotation_web.dashboards.conftest import plant

pytestmark = pytest.mark.django_db


def _flags(project, **filters):
    return {
        (f["annotator"], f["flag"]): f
        for f in people.annotator_flags(project=project, filters=DashboardFilters(**filters))
    }


def test_a_planted_side_bias_is_flagged_and_a_fair_annotator_is_not(make_project, make_user, ordinary_pairs):
    project = make_project(pairs=40)
    lefty, fair = make_user(Role.ANNOTATOR, "lefty"), make_user(Role.ANNOTATOR, "fair")
    for index, pair in enumerate(ordinary_pairs(project)):
        shown_left = "a" if index % 2 == 0 else "b"
        other = "b" if shown_left == "a" else "a"
        # lefty picks the left image 34 times in 40; fair picks left and right in turn (20 of 40)
        plant(pair=pair, annotator=lefty, outcome=shown_left if index < 34 else other, shown_left=shown_left)
        plant(
            pair=pair, annotator=fair, outcome=shown_left if index % 4 < 2 else other, shown_left=shown_left
        )
    flags = _flags(project)
    assert set(flags) == {("lefty", "side-biased (left)")}
    evidence = flags[("lefty", "side-biased (left)")]
    assert evidence["p_value"] == pytest.approx(binomtest(34, 40, 0.5).pvalue)
    assert evidence["p_value"] < 0.01 and "34 of 40" in evidence["evidence"]
    rows = {row["annotator"]: row for row in people.annotator_table(project=project, filters=NO_FILTERS)}
    assert (rows["lefty"]["chose_left"], rows["lefty"]["decisive"]) == (34, 40)
    assert (rows["fair"]["chose_left"], rows["fair"]["decisive"]) == (20, 40)


def test_too_few_decisive_answers_are_not_enough_to_flag_a_side(make_project, make_user, ordinary_pairs):
    project = make_project(pairs=12)
    lefty = make_user(Role.ANNOTATOR, "lefty")
    for pair in ordinary_pairs(project):  # 12 of 12 on the left: p = 0.0005, but below the minimum of 20
        plant(pair=pair, annotator=lefty, outcome="a", shown_left="a")
    assert not any(flag.startswith("side") for _, flag in _flags(project))


def test_too_fast_by_median_and_the_median_itself(make_project, make_user, ordinary_pairs, settings):
    settings.DASHBOARD_TOO_FAST_MEDIAN_SECONDS = 1.5
    project = make_project(pairs=12)
    quick, careful = make_user(Role.ANNOTATOR, "quick"), make_user(Role.ANNOTATOR, "careful")
    for index, pair in enumerate(ordinary_pairs(project)):
        plant(pair=pair, annotator=quick, outcome="tie", duration_ms=400 + 100 * index)  # median 0.95 s
        plant(pair=pair, annotator=careful, outcome="tie", duration_ms=4000 + (index % 3) * 1000)
    rows = {row["annotator"]: row for row in people.annotator_table(project=project, filters=NO_FILTERS)}
    assert rows["quick"]["median_seconds"] == pytest.approx(0.95)
    assert rows["careful"]["median_seconds"] == pytest.approx(5.0)
    flags = _flags(project)
    assert set(flags) == {("quick", "too fast")}
    assert "0.95 s" in flags[("quick", "too fast")]["evidence"]
    settings.DASHBOARD_TOO_FAST_MEDIAN_SECONDS = 0.5
    assert not _flags(project)


def test_agreement_with_the_majority_matches_the_labeling_rule(make_project, make_user, ordinary_pairs):
    project = make_project(pairs=30)
    annotators = [make_user(Role.ANNOTATOR, f"ann{i}") for i in range(4)]
    rng = random.Random(7)
    for pair in ordinary_pairs(project):
        for annotator in rng.sample(annotators, rng.randint(1, 4)):
            plant(pair=pair, annotator=annotator, outcome=rng.choice(["a", "a", "b", "tie", "both_bad"]))
    expected = agreement_with_majority(
        Judgment.objects.filter(pair__project=project).values_list(
            "pair_id", "annotator__username", "outcome"
        )
    )
    rows = {row["annotator"]: row for row in people.annotator_table(project=project, filters=NO_FILTERS)}
    assert any(stats["compared"] for stats in expected.values())
    for name, row in rows.items():
        stats = expected.get(name, {"compared": 0, "agreed": 0})
        assert (row["majority_compared"], row["majority_agreed"]) == (stats["compared"], stats["agreed"]), (
            name
        )


def test_running_alpha_on_krippendorffs_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", nominal data: alpha = 0.743.
    units = {
        1: [1, 1, 1], 2: [2, 2, 3, 2], 3: [3, 3, 3, 3], 4: [3, 3, 3, 3], 5: [2, 2, 2, 2], 6: [1, 2, 3, 4],
        7: [4, 4, 4, 4], 8: [1, 1, 2, 1], 9: [2, 2, 2, 2], 10: [5, 5, 5], 11: [1, 1], 12: [3],
    }  # fmt: skip
    running = people.RunningAlpha()
    values = [(unit, str(value)) for unit, unit_values in units.items() for value in unit_values]
    random.Random(3).shuffle(values)  # the order values arrive in does not change the figure
    for unit, value in values:
        running.add(unit, value)
    assert running.alpha() == pytest.approx(0.743, abs=0.001)
    assert running.pairable_units == 11


def test_alpha_per_batch_over_time_ends_at_the_batchs_alpha(make_project, make_user, ordinary_pairs):
    project = make_project(pairs=20)
    annotators = [make_user(Role.ANNOTATOR, f"ann{i}") for i in range(3)]
    rng = random.Random(11)
    today = timezone.localdate()
    for pair in ordinary_pairs(project):
        for offset, annotator in enumerate(annotators):
            outcome = rng.choice(["a", "a", "a", "b", "tie"])
            plant(pair=pair, annotator=annotator, outcome=outcome, day=today - timedelta(days=2 - offset))
    points = people.alpha_per_batch_over_time(project=project, filters=NO_FILTERS)
    assert {point["batch"] for point in points} == {"b1", "b2"}
    for batch in ("b1", "b2"):
        series = [point for point in points if point["batch"] == batch]
        assert [point["day"] for point in series] == [
            (today - timedelta(days=n)).isoformat() for n in (2, 1, 0)
        ]
        assert series[0]["alpha"] is None  # one answer per pair on the first day: nothing pairable
        units: dict[int, list[str]] = {}
        for pair_id, outcome in Judgment.objects.filter(pair__project=project, pair__batch=batch).values_list(
            "pair_id", "outcome"
        ):
            units.setdefault(pair_id, []).append(outcome)
        assert series[-1]["alpha"] == pytest.approx(krippendorff_alpha_nominal(units))
        assert series[-1]["pairs_with_two_or_more"] == 10


def test_alpha_has_a_point_for_a_day_of_single_answers_which_leave_it_unchanged(
    make_project, make_user, ordinary_pairs
):
    project = make_project(pairs=20)
    first, second = make_user(Role.ANNOTATOR, "ann-first"), make_user(Role.ANNOTATOR, "ann-second")
    today = timezone.localdate()
    pairs = [pair for pair in ordinary_pairs(project) if pair.batch == "b1"]
    shared, single = pairs[:4], pairs[4:7]
    for index, pair in enumerate(shared):  # two answers a pair, two days ago and one day ago
        plant(pair=pair, annotator=first, outcome="a", day=today - timedelta(days=2))
        plant(pair=pair, annotator=second, outcome="ab"[index % 2], day=today - timedelta(days=1))
    for pair in single:  # today: one answer on each of three other pairs, none pairable
        plant(pair=pair, annotator=first, outcome="tie", day=today)
    series = people.alpha_per_batch_over_time(project=project, filters=NO_FILTERS)
    assert [point["day"] for point in series] == [(today - timedelta(days=n)).isoformat() for n in (2, 1, 0)]
    assert series[0]["alpha"] is None and series[0]["pairs_with_two_or_more"] == 0
    units = {pair.pk: ["a", "ab"[index % 2]] for index, pair in enumerate(shared)}
    assert series[1]["alpha"] == pytest.approx(krippendorff_alpha_nominal(units))
    assert series[2]["alpha"] == series[1]["alpha"] and series[2]["pairs_with_two_or_more"] == 4
    since_yesterday = DashboardFilters(date_from=today - timedelta(days=1))
    later = people.alpha_per_batch_over_time(project=project, filters=since_yesterday)
    # From yesterday on each shared pair has one answer in the filter: nothing is pairable.
    assert [(point["alpha"], point["pairs_with_two_or_more"]) for point in later] == [(None, 0), (None, 0)]


def test_below_gold_uses_the_loops_rule_with_its_evidence(make_project, make_user, gold_pairs_of):
    project = make_project(pairs=1, gold=6)
    sloppy, good = make_user(Role.ANNOTATOR, "sloppy"), make_user(Role.ANNOTATOR, "good")
    for index, pair in enumerate(gold_pairs_of(project)):
        wrong = "b" if pair.gold_outcome == "a" else "a"
        plant(pair=pair, annotator=sloppy, outcome=pair.gold_outcome if index < 3 else wrong)
        plant(pair=pair, annotator=good, outcome=pair.gold_outcome)
    flags = _flags(project)
    assert set(flags) == {("sloppy", "below gold")}
    assert "3 of 6" in flags[("sloppy", "below gold")]["evidence"]
    rows = {row["annotator"]: row for row in people.annotator_table(project=project, filters=NO_FILTERS)}
    assert rows["sloppy"]["gold_accuracy"] == pytest.approx(0.5) and rows["good"]["gold_accuracy"] == 1.0


def test_answers_per_annotator_per_day_leave_skips_out(make_project, make_user, ordinary_pairs):
    project = make_project(pairs=3)
    alice = make_user(Role.ANNOTATOR, "alice")
    today = timezone.localdate()
    pairs = ordinary_pairs(project)
    plant(pair=pairs[0], annotator=alice, outcome="a", day=today - timedelta(days=1))
    plant(pair=pairs[1], annotator=alice, outcome="b")
    plant(pair=pairs[2], annotator=alice, outcome="skip")
    rows = people.judgments_per_annotator_per_day(project=project, filters=NO_FILTERS)
    assert rows == [
        {"day": (today - timedelta(days=1)).isoformat(), "annotator": "alice", "answers": 1},
        {"day": today.isoformat(), "annotator": "alice", "answers": 1},
    ]
