"""The human leaderboard: Davidson's Bradley–Terry with ties recovers planted strengths with bootstrap intervals
that cover them; the selector fits only cross-version, non-gold judgments of annotators not flagged by gold;
the API serves it to engineers and managers."""

from __future__ import annotations

import itertools
import uuid

import numpy as np
import pytest
from django.utils import timezone

from annotation_web.accounts.models import Role, User
from annotation_web.labeling.models import Candidate, FaceInput, Judgment, Outcome, Pair, Reservation
from annotation_web.loop import selectors
from annotation_web.loop.leaderboard import FIRST, SECOND, TIE, davidson_fit, judgment_counts, leaderboard_fit
from annotation_web.loop.models import LoopState
from annotation_web.registry.models import ModelKind, ModelVersion
from tests.annotation_web.training.test_ml_loop import engineer_client

# Planted log-strengths (centred) and tie parameter ν.
TRUTH = {"v1": 0.9, "v2": 0.35, "v3": -0.25, "v4": -1.0}
NU = 0.5


def _outcome_probabilities(first: float, second: float, nu: float = NU) -> np.ndarray:
    a, b = np.exp(first), np.exp(second)
    tie = nu * np.sqrt(a * b)
    return np.array([a, b, tie]) / (a + b + tie)


def simulated(truth: dict, n: int, seed: int, nu: float = NU) -> list[tuple[str, str, int, int]]:
    rng = np.random.default_rng(seed)
    names = list(truth)
    rows = []
    for _ in range(n):
        i, j = rng.choice(len(names), 2, replace=False)
        outcome = rng.choice(3, p=_outcome_probabilities(truth[names[i]], truth[names[j]], nu))
        rows.append((names[i], names[j], int(outcome), 1))
    return rows


def test_the_fit_recovers_a_planted_order_with_intervals_that_cover_the_truth():
    board = leaderboard_fit(simulated(TRUTH, 1500, seed=3), resamples=200, seed=0)
    assert [row.version for row in board.rows] == ["v1", "v2", "v3", "v4"]
    centre = np.mean(list(TRUTH.values()))
    for row in board.rows:
        assert row.lower <= TRUTH[row.version] - centre <= row.upper, row
        assert row.lower < row.score < row.upper
        assert row.judgments == row.wins + row.losses + row.ties
    assert abs(sum(row.score for row in board.rows)) < 1e-9  # centred
    assert 0.35 < board.tie_strength < 0.7
    assert board.judgments == 1500 and sum(row.judgments for row in board.rows) == 2 * 1500
    # The difference's own interval covers the true difference and excludes zero here.
    difference, lower, upper = board.difference("v2", "v3")
    assert lower <= TRUTH["v2"] - TRUTH["v3"] <= upper and lower > 0
    assert board.difference("v3", "v2")[2] < 0  # "worse" as promotion reads it
    # A fixed seed: the same data give the same board.
    again = leaderboard_fit(simulated(TRUTH, 1500, seed=3), resamples=200, seed=0)
    assert again.rows == board.rows


def test_the_intervals_cover_the_truth_about_95_percent_of_the_time():
    """Over 40 simulated data sets, each version's 95% interval covers its true score about 95% of the time
    (all four at once about 80%: the test data sets above use fixed seeds)."""
    centre = np.mean(list(TRUTH.values()))
    covered = []
    for seed in range(40):
        board = leaderboard_fit(simulated(TRUTH, 600, seed=100 + seed), resamples=200, seed=seed)
        covered += [row.lower <= TRUTH[row.version] - centre <= row.upper for row in board.rows]
    assert 0.88 <= np.mean(covered) <= 1.0


def test_the_fit_is_the_maximum_of_davidsons_likelihood():
    versions, pairs, counts = judgment_counts(simulated(TRUTH, 400, seed=5))
    theta, eta = davidson_fit(pairs, counts, len(versions), prior_precision=0.0)

    def log_likelihood(theta: np.ndarray, eta: float) -> float:
        total = 0.0
        for (i, j), cell in zip(pairs, counts, strict=True):
            total += float(cell @ np.log(_outcome_probabilities(theta[i], theta[j], np.exp(eta))))
        return total

    best = log_likelihood(theta, eta)
    rng = np.random.default_rng(0)
    for _ in range(20):  # any nearby point is worse
        assert log_likelihood(theta + rng.normal(0, 0.02, theta.shape), eta + rng.normal(0, 0.02)) < best
    # The batched fit (the bootstrap's) gives each table the fit it gets alone.
    batch, _ = davidson_fit(pairs, np.stack([counts, counts[:, [1, 0, 2]]]), len(versions))
    alone, _ = davidson_fit(pairs, counts[:, [1, 0, 2]], len(versions))
    assert np.allclose(batch[1], alone, atol=1e-8)


def test_a_version_that_never_lost_and_no_ties_still_get_a_finite_board():
    rows = [("a", "b", FIRST, 30), ("b", "c", FIRST, 10), ("c", "b", FIRST, 5)]
    board = leaderboard_fit(rows, resamples=50)
    assert [row.version for row in board.rows] == ["a", "b", "c"]
    assert all(np.isfinite([row.score, row.lower, row.upper]).all() for row in board.rows)
    assert board.tie_strength < 0.01
    assert leaderboard_fit([]).rows == ()
    assert judgment_counts([("x", "y", SECOND, 2), ("y", "x", FIRST, 1), ("x", "y", TIE, 3)])[2].tolist() == [
        [0.0, 3.0, 3.0]
    ]


# --- from the database -------------------------------------------------------------------------------------


def _judgment(pair: Pair, annotator, outcome: str, *, is_gold: bool = False, gold_correct=None) -> Judgment:
    """An unsaved judgment with its unsaved reservation (`save_all` writes both in two statements)."""
    now = timezone.now()
    reservation = Reservation(
        pair=pair, annotator=annotator, shown_left="a", state="submitted", created_at=now, expires_at=now
    )
    return Judgment(
        pair=pair,
        annotator=annotator,
        reservation=reservation,
        outcome=outcome,
        shown_left="a",
        idempotency_key=uuid.uuid4().hex,
        server_duration_ms=1000,
        is_gold=is_gold,
        gold_correct=gold_correct,
    )


def save_all(judgments: list[Judgment]) -> None:
    Reservation.objects.bulk_create([j.reservation for j in judgments])
    Judgment.objects.bulk_create(judgments)


CODE_TO_OUTCOME = {FIRST: Outcome.A, SECOND: Outcome.B}


@pytest.fixture
def planted(make_project):
    """4 restorer versions, every pair of them on 12 inputs, judged by 16 annotators from the planted model
    (half the ties answered "both bad")."""
    project = make_project(pairs=0)
    versions = {
        name: ModelVersion.objects.create(kind=ModelKind.RESTORER, name="planted", version=k + 1)
        for k, name in enumerate(TRUTH)
    }
    pairs: list[tuple[Pair, str, str]] = []
    for index in range(12):
        face_input = FaceInput.objects.create(
            project=project, source_name=f"{index}.png", content_hash=f"h{index}", lq_key=f"in/{index}/lq.png"
        )
        candidates = {
            name: Candidate.objects.create(
                face_input=face_input, model_version=version, image_key=f"c/{index}-{name}.png"
            )
            for name, version in versions.items()
        }
        for first, second in itertools.combinations(TRUTH, 2):
            pair = Pair.objects.create(
                project=project,
                face_input=face_input,
                candidate_a=candidates[first],
                candidate_b=candidates[second],
                open_slots=0,
            )
            pairs.append((pair, first, second))
    rng = np.random.default_rng(16)
    judgments, rows = [], []
    # Annotators as plain rows (no password to hash): the fit never looks at their accounts.
    annotators = User.objects.bulk_create(
        [User(username=f"planted-{project.pk}-{k}", role=Role.ANNOTATOR) for k in range(16)]
    )
    for annotator in annotators:
        for pair, first, second in pairs:
            code = int(rng.choice(3, p=_outcome_probabilities(TRUTH[first], TRUTH[second])))
            outcome = CODE_TO_OUTCOME.get(code) or (Outcome.TIE if rng.random() < 0.5 else Outcome.BOTH_BAD)
            judgments.append(_judgment(pair, annotator, outcome))
            rows.append((versions[first].pk, versions[second].pk, code, 1))
    save_all(judgments)
    return project, versions, pairs, rows  # rows: what was simulated, by version id


@pytest.mark.django_db
def test_the_project_leaderboard_recovers_the_planted_order(planted):
    project, versions, _, simulated_rows = planted
    board = selectors.project_leaderboard(project=project)
    # Exactly the fit of what was simulated ("both bad" counted as a tie).
    assert board.rows == leaderboard_fit(simulated_rows).rows
    by_id = {v.pk: name for name, v in versions.items()}
    assert [by_id[row.version] for row in board.rows] == ["v1", "v2", "v3", "v4"]
    centre = np.mean(list(TRUTH.values()))
    for row in board.rows:
        assert row.lower <= TRUTH[by_id[row.version]] - centre <= row.upper
    assert board.judgments == 16 * 12 * 6


@pytest.mark.django_db
def test_gold_flagged_annotators_same_version_pairs_and_skips_do_not_change_the_fit(
    planted, make_user, django_assert_max_num_queries
):
    project, versions, pairs, _ = planted
    before = sorted(selectors.leaderboard_judgments(project=project))
    project_id = project.pk

    # A careless annotator: 6 gold pairs, all wrong (flagged), who also answers every pair against the truth.
    careless = make_user()
    # A careful one with the same gold record but right: not flagged, so the fit changes with them (control).
    reference = ModelVersion.objects.create(kind=ModelKind.REFERENCE, name="hq-original")
    degraded = ModelVersion.objects.create(kind=ModelKind.REFERENCE, name="heavy-degradation")
    gold_judgments = []
    for index in range(6):
        face_input = FaceInput.objects.create(
            project_id=project_id, source_name=f"g{index}.png", content_hash=f"g{index}", lq_key="lq"
        )
        better = Candidate.objects.create(
            face_input=face_input, model_version=reference, image_key=f"g/{index}a"
        )
        worse = Candidate.objects.create(
            face_input=face_input, model_version=degraded, image_key=f"g/{index}b"
        )
        gold = Pair.objects.create(
            project_id=project_id,
            face_input=face_input,
            candidate_a=better,
            candidate_b=worse,
            is_gold=True,
            gold_outcome=Outcome.A,
            open_slots=0,
        )
        gold_judgments.append(_judgment(gold, careless, Outcome.B, is_gold=True, gold_correct=False))
    against_truth = [_judgment(pair, careless, Outcome.B) for pair, _, _ in pairs]
    # Gold pairs between restorer versions (consensus gold), judged by an unflagged annotator: left out.
    someone = make_user()
    first_pair = pairs[0][0]
    Pair.objects.filter(pk=first_pair.pk).update(is_gold=True, gold_outcome=Outcome.A)
    Judgment.objects.filter(pair=first_pair).update(is_gold=True)
    gold_between_versions = [_judgment(first_pair, someone, Outcome.B, is_gold=True, gold_correct=False)]
    # A pair of two candidates of one version, and skips: left out.
    face_input = pairs[1][0].face_input
    twin = Candidate.objects.create(
        face_input=face_input, model_version=versions["v4"], seed=1, image_key="c/twin.png"
    )
    same_version = Pair.objects.create(
        project_id=project_id,
        face_input=face_input,
        candidate_a=Candidate.objects.get(face_input=face_input, model_version=versions["v4"], seed=0),
        candidate_b=twin,
        open_slots=0,
    )
    others = [_judgment(same_version, someone, Outcome.A)] + [
        _judgment(pair, someone, Outcome.SKIP) for pair, _, _ in pairs[1:]
    ]
    save_all(gold_judgments + against_truth + gold_between_versions + others)

    assert selectors.annotators_flagged(project=project).get()["annotator_id"] == careless.pk
    after = sorted(selectors.leaderboard_judgments(project=project))
    # Only the 16 judgments of the pair turned gold left (the careless annotator's are out with them).
    assert sum(n for *_, n in after) == sum(n for *_, n in before) - 16
    without_gold_pair = Judgment.objects.filter(pair=first_pair, is_gold=True).exclude(annotator=someone)
    Judgment.objects.filter(pk__in=without_gold_pair.values("pk")).update(is_gold=False)
    Pair.objects.filter(pk=first_pair.pk).update(is_gold=False)
    assert sorted(selectors.leaderboard_judgments(project=project)) == before

    # The control: the careless annotator with a clean gold record counts, and moves the fit.
    Judgment.objects.filter(annotator=careless, is_gold=True).update(gold_correct=True)
    assert not selectors.annotators_flagged(project=project).exists()
    assert sorted(selectors.leaderboard_judgments(project=project)) != before
    with django_assert_max_num_queries(1):
        selectors.leaderboard_judgments(project=project)


@pytest.mark.django_db
def test_judgments_of_an_edit_of_a_sample_do_not_count_for_its_version(planted, make_user):
    # an unsharp mask of v1's sample beats v4's sample every time: it is not what v1 restores
    project, versions, pairs, _ = planted
    before = sorted(selectors.leaderboard_judgments(project=project))
    face_input = pairs[0][0].face_input
    edit = Candidate.objects.create(
        face_input=face_input, model_version=versions["v1"], generation="job-9-edit+2", image_key="c/edit.png"
    )
    sample = Candidate.objects.get(face_input=face_input, model_version=versions["v4"], generation="")
    against_edit = Pair.objects.create(
        project=project, face_input=face_input, candidate_a=edit, candidate_b=sample, open_slots=0
    )
    save_all([_judgment(against_edit, make_user(), Outcome.A) for _ in range(20)])
    assert sorted(selectors.leaderboard_judgments(project=project)) == before
    # the control: the same pair with v1's plain sample counts
    Candidate.objects.filter(pk=edit.pk).update(generation="job-9")
    assert sorted(selectors.leaderboard_judgments(project=project)) != before


@pytest.mark.django_db
def test_the_leaderboard_api(planted, make_user):
    project, versions, _, _ = planted
    LoopState.objects.create(project=project, restorer=versions["v2"])
    url = f"/api/projects/{project.slug}/leaderboard/"
    for role in (Role.ENGINEER, Role.MANAGER):
        response = engineer_client(make_user(role)).get(url)
        assert response.status_code == 200, response.content
    body = response.json()
    assert body["judgments"] == 16 * 12 * 6 and body["both_bad"] == "tie" and body["resamples"] == 200
    top = body["versions"][0]
    assert (
        top["rank"] == 1 and top["version"] == str(versions["v1"]) and top["version_id"] == versions["v1"].pk
    )
    assert top["interval"][0] <= top["score"] <= top["interval"][1]
    assert top["wins"] + top["losses"] + top["ties"] == top["judgments"] == 16 * 12 * 3
    assert [v["in_use"] for v in body["versions"]] == [False, True, False, False]
    assert engineer_client(make_user(Role.ANNOTATOR)).get(url).status_code == 403
    from annotation_web.accounts.services import user_create

    outsider = user_create(username="outsider", password="pw-123456", role=Role.ENGINEER)
    assert engineer_client(outsider).get(url).status_code == 404
