"""Gold and model identity never reach an annotator: every URL and token an annotator is shown, decoded, says
nothing of model, seed, input, HQ or gold status, and gold pairs' URLs look exactly like everyone else's.

Run on the local storage and on the real S3 server (SeaweedFS) the suites already use."""

from __future__ import annotations

import base64
import json
import re
import uuid
from urllib.parse import urlsplit

import pytest
from django.core import signing
from rest_framework.test import APIClient

from annotation_web.labeling import imports, pairs
from annotation_web.labeling.ingest import SourceFile
from annotation_web.labeling.models import Candidate, Judgment, Pair, Reservation
from annotation_web.labeling.selectors import IMAGE_HANDLE_SALT
from annotation_web.registry.models import ModelVersion
from annotation_web.storage import get_storage
from tests.annotation_web.conftest import face_png

# What no part of an annotator's URL may name (compared against decoded, non-random parts).
FORBIDDEN = ("model", "seed", "gold", "reference", "hq", "input", "sample", "classical", "bicubic", "degrad")
IMAGE_URL = re.compile(
    r"^/files/r/(?P<handle>[A-Za-z0-9_\-]+:[A-Za-z0-9_\-]+:[A-Za-z0-9_\-]+)/(?P<slot>left|right|lq)/$"
)


def build_project(make_user, *, faces: int = 3):
    """Faces imported for real, classical candidates, every pair, and one HQ-vs-degraded gold pair a face."""
    # gold_rate 1: every gold pair is served (first), then the ordinary ones; deterministic.
    project = pairs.project_create(name="Opaque", slug=f"opaque-{uuid.uuid4().hex[:8]}", gold_rate=1.0)
    report = imports.face_inputs_import(
        project=project, source=[SourceFile(f"face-{i}.png", face_png(100 + i)) for i in range(faces)]
    )
    for face_input in project.inputs.filter(pk__in=report.imported):
        candidates = pairs.classical_candidates_create(face_input=face_input)
        pairs.pairs_create_all_for_input(face_input=face_input, candidates=candidates[:2])
        assert pairs.gold_pair_create_for_input(face_input=face_input) is not None
    return project, make_user()


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def serve_everything(client, project) -> list[dict]:
    """Every pair the annotator is served, through `next` and submit's `next`, until the queue is empty."""
    served = []
    pair = client.post(f"/api/projects/{project.slug}/next/", {}, format="json").json()["pair"]
    while pair is not None:
        served.append(pair)
        response = client.post(
            "/api/judgments/",
            {
                "reservation": pair["reservation"],
                "choice": "left",
                "idempotency_key": pair["reservation"],
                "next": {"exclude": []},
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        # Images of a just-submitted reservation still load (the page may still be drawing them).
        for field in ("reference_url", "left_url", "right_url"):
            assert client.get(pair[field]).status_code == 200
        pair = response.json()["next"]["pair"]
    return served


def decoded_parts(url: str) -> list[str]:
    """The URL's readable parts: its non-token path components and its token's decoded payload."""
    parts = urlsplit(url)
    assert not parts.scheme and not parts.netloc and not parts.query and not parts.fragment, url
    match = IMAGE_URL.match(parts.path)
    assert match, f"not a reservation handle URL: {url}"
    payload_b64 = match["handle"].split(":")[0]
    payload = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)).decode()
    return ["files", "r", match["slot"], payload]


def url_features(url: str) -> tuple:
    """What a classifier given only the URL could use: its length, shape and character classes per part."""
    path = urlsplit(url).path
    shape = tuple((len(part), re.sub(r"[A-Za-z0-9_\-]", "x", part)) for part in path.split("/"))
    return (len(url), shape)


@pytest.mark.django_db
def test_every_url_and_token_an_annotator_sees_is_opaque(any_storage, make_user):
    project, annotator = build_project(make_user)
    client = session_client(annotator)
    page = client.get(f"/annotate/{project.slug}/")
    assert page.status_code == 200
    served = serve_everything(client, project)
    reservations = {
        str(r.pk): r for r in Reservation.objects.filter(annotator=annotator).select_related("pair")
    }
    kinds = {pair["reservation"]: reservations[pair["reservation"]].pair.is_gold for pair in served}
    assert set(kinds.values()) == {True, False}, "the test needs both gold and ordinary pairs served"
    assert len(served) == Pair.objects.filter(project=project).count()

    # What the storage and the registry know, none of which may show through.
    secrets = {str(v) for v in ModelVersion.objects.all()} | {v.name for v in ModelVersion.objects.all()}
    for face_input in project.inputs.all():
        secrets |= {face_input.lq_key, face_input.hq_key, face_input.content_hash, face_input.source_name}
    secrets |= set(Candidate.objects.values_list("image_key", flat=True))

    features: dict[bool, set] = {True: set(), False: set()}
    storage = get_storage()
    for pair in served:
        assert set(pair) == {
            "reservation",
            "expires_at",
            "reference_url",
            "left_url",
            "right_url",
            "instruction",
        }
        reservation = reservations[pair["reservation"]]
        for field, slot in (("reference_url", "lq"), ("left_url", "left"), ("right_url", "right")):
            url = pair[field]
            for part in decoded_parts(url):
                assert not any(word in part.lower() for word in FORBIDDEN), (url, part)
            # The token names the reservation and nothing else.
            handle = IMAGE_URL.match(url)["handle"]
            assert signing.loads(handle, salt=IMAGE_HANDLE_SALT) == uuid.UUID(pair["reservation"]).hex
            assert not any(secret in url for secret in secrets if len(secret) >= 6), url
            features[kinds[pair["reservation"]]].add((slot, url_features(url)))
            # And it serves the right image: the candidate on that side, or the LQ.
            response = client.get(url)
            assert response.status_code == 200 and response["Content-Type"] == "image/png"
            candidate_pair = reservation.pair
            left, right = (
                (candidate_pair.candidate_a, candidate_pair.candidate_b)
                if reservation.shown_left == "a"
                else (candidate_pair.candidate_b, candidate_pair.candidate_a)
            )
            key = {"lq": candidate_pair.face_input.lq_key, "left": left.image_key, "right": right.image_key}[
                slot
            ]
            assert response.content == storage.get(key)
        body = json.dumps({k: v for k, v in pair.items() if not k.endswith("_url")}).lower()
        assert not any(word in body for word in ("gold", "model", "seed", "hq", "candidate", "shown_left"))
    # A classifier given only the URLs has nothing to go on: gold and ordinary URLs have the same features.
    assert features[True] == features[False]

    # Gold images are stored like any candidate's: random keys, the HQ copied, never `inputs/.../hq.png`.
    for candidate in Candidate.objects.filter(face_input__project=project):
        assert re.fullmatch(r"c/[0-9a-f]{32}\.png", candidate.image_key), candidate.image_key
    gold = Pair.objects.filter(project=project, is_gold=True).select_related("face_input")
    for pair in gold:
        better = pair.candidate_a if pair.gold_outcome == "a" else pair.candidate_b
        assert storage.get(better.image_key) == storage.get(pair.face_input.hq_key)

    # The judging page: no URL or word on it tells gold, models or seeds.
    # The CSRF token is random letters: it may spell "hq" by chance (it did, once in a CI run), so it is left out.
    html = page.content.decode()
    csrf = re.search(r'data-csrf="([^"]+)"', html)
    if csrf:
        html = html.replace(csrf.group(1), "")
    for url in re.findall(r"""(?:src|href|action|data-[a-z-]+)=["']([^"']+)["']""", html):
        assert not any(word in url.lower() for word in ("gold", "seed", "model", "hq")), url
    assert not any(word in html.lower() for word in ("gold", "seed", "is_gold"))


@pytest.mark.django_db
def test_image_handles_work_only_for_their_annotator_and_a_live_reservation(make_user):
    project, annotator = build_project(make_user, faces=1)
    stranger = make_user()
    client = session_client(annotator)
    pair = client.post(f"/api/projects/{project.slug}/next/", {}, format="json").json()["pair"]
    assert client.get(pair["left_url"]).status_code == 200
    assert session_client(stranger).get(pair["left_url"]).status_code == 404
    assert APIClient().get(pair["left_url"]).status_code in (401, 403)
    handle = IMAGE_URL.match(pair["left_url"])["handle"]
    forged = signing.dumps(uuid.uuid4().hex, salt=IMAGE_HANDLE_SALT)
    assert client.get(pair["left_url"].replace(handle, forged)).status_code == 404
    assert client.get(pair["left_url"].replace(handle, handle[:-2] + "xx")).status_code == 404
    assert client.get(pair["left_url"].replace("/left/", "/hq/")).status_code == 404
    # Released long ago: the handle is dead.
    from datetime import timedelta

    from django.utils import timezone

    Reservation.objects.filter(pk=pair["reservation"]).update(
        state="expired", expires_at=timezone.now() - timedelta(hours=1)
    )
    Pair.objects.filter(reservations__pk=pair["reservation"]).update(open_slots=1)
    assert client.get(pair["left_url"]).status_code == 404


@pytest.mark.django_db
def test_an_annotator_removed_from_the_project_loses_its_images_at_once(make_user):
    from annotation_web.accounts.models import ProjectMembership

    project, annotator = build_project(make_user, faces=1)
    client = session_client(annotator)
    pair = client.post(f"/api/projects/{project.slug}/next/", {}, format="json").json()["pair"]
    assert client.get(pair["left_url"]).status_code == 200
    ProjectMembership.objects.filter(user=annotator, project=project).delete()
    assert client.get(pair["left_url"]).status_code == 404
    assert client.get(pair["reference_url"]).status_code == 404


@pytest.mark.django_db
def test_stats_count_gold_like_every_other_pair(make_project, make_user):
    # Today `left_in_queue` leaves gold out: after judging a gold pair the count stays put, and says so.
    project = make_project(pairs=3, gold=3, gold_rate=1.0)  # the gold first, then the rest
    annotator = make_user()
    client = session_client(annotator)
    stats_url = f"/api/projects/{project.slug}/me/stats/"
    assert set(client.get(stats_url).json()) == {
        "judged_today",
        "judged_total",
        "skipped_total",
        "left_in_queue",
    }
    next_url = f"/api/projects/{project.slug}/next/"
    pair = client.post(next_url, {}, format="json").json()["pair"]
    deltas, kinds = [], []
    while pair is not None:
        before = client.get(stats_url).json()["left_in_queue"]
        kinds.append(Reservation.objects.get(pk=pair["reservation"]).pair.is_gold)
        response = client.post(
            "/api/judgments/",
            {"reservation": pair["reservation"], "choice": "left", "idempotency_key": pair["reservation"]},
            format="json",
        )
        assert response.status_code == 201
        deltas.append(before - client.get(stats_url).json()["left_in_queue"])
        pair = client.post(next_url, {}, format="json").json()["pair"]
    assert kinds == [True, True, True, False, False, False]
    # Each judged pair takes one off the count, gold or not; after the last, nothing is left.
    assert deltas == [1, 1, 1, 1, 1, 1]
    assert client.get(stats_url).json()["left_in_queue"] == 0


@pytest.mark.django_db
def test_annotators_are_not_told_the_gold_rate(make_project, make_user, engineer):
    project = make_project(pairs=1, gold_rate=0.3)
    annotator = make_user()
    listed = session_client(annotator).get("/api/projects/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert rows and all("gold_rate" not in row for row in rows)
    staff = session_client(engineer).get("/api/projects/").json()
    staff_rows = staff["results"] if isinstance(staff, dict) else staff
    assert any(row.get("gold_rate") == 0.3 for row in staff_rows if row["slug"] == project.slug)


@pytest.mark.django_db
def test_gold_from_consensus_turns_clear_majorities_into_gold(make_project, make_user):
    project = make_project(pairs=3, overlap=3)
    judges = [make_user() for _ in range(3)]
    from annotation_web.labeling import judgments, queue

    wanted = {}  # pair id -> how many of the three prefer a
    for index, judge in enumerate(judges):
        while (reserved := queue.pair_reserve_next(annotator=judge, project=project)) is not None:
            votes_for_a = wanted.setdefault(reserved.pair_id, len(wanted) + 1)  # 1, 2 or 3 votes for a
            prefers_a = index < votes_for_a
            left_is_a = reserved.shown_left == "a"
            choice = "left" if prefers_a == left_is_a else "right"
            judgments.judgment_submit(
                annotator=judge, reservation_id=reserved.pk, choice=choice, idempotency_key=str(reserved.pk)
            )
    made = pairs.gold_pairs_from_consensus(
        project=project, annotators=judges, min_judgments=3, min_share=0.75
    )
    unanimous = {pair_id for pair_id, votes in wanted.items() if votes == 3}
    assert {p.pk for p in made} == unanimous  # 3 of 3 for a; 2 of 3 is no clear majority at 0.75
    gold = Pair.objects.get(pk=unanimous.pop())
    assert gold.is_gold and gold.gold_outcome == "a" and gold.open_slots == 0
    assert not Judgment.objects.filter(pair=gold, is_gold=False).exists()
    assert pairs.gold_pairs_from_consensus(project=project, annotators=judges) == []  # already gold

    # A newcomer is served it as gold, and scored against the consensus.
    from annotation_web.labeling import judgments as submit

    project.gold_rate = 1.0
    project.save(update_fields=["gold_rate"])
    newcomer = make_user()
    reserved = queue.pair_reserve_next(annotator=newcomer, project=project)
    assert reserved.pair_id == gold.pk
    result = submit.judgment_submit(
        annotator=newcomer,
        reservation_id=reserved.pk,
        choice="left" if reserved.shown_left == "a" else "right",
        idempotency_key="newcomer",
    )
    assert result.is_gold and result.gold_correct is True
    from annotation_web.labeling.queue import queue_invariant_violations

    assert queue_invariant_violations(project=project) == []


@pytest.mark.django_db
def test_trusted_annotators_are_those_right_on_enough_gold(make_project, make_user):
    from annotation_web.labeling import judgments, queue

    project = make_project(pairs=0, gold=3, gold_rate=1.0)
    good, bad = make_user(), make_user()
    for user, right in ((good, True), (bad, False)):
        while (reserved := queue.pair_reserve_next(annotator=user, project=project)) is not None:
            gold_outcome = Pair.objects.get(pk=reserved.pair_id).gold_outcome
            left_is_answer = reserved.shown_left == gold_outcome
            choice = "left" if left_is_answer == right else "right"
            judgments.judgment_submit(
                annotator=user, reservation_id=reserved.pk, choice=choice, idempotency_key=str(reserved.pk)
            )
    assert pairs.trusted_annotators(project=project, min_gold_answered=3) == [good]
    assert pairs.trusted_annotators(project=project, min_gold_answered=4) == []
