"""`project_agreement` reads only the pairs judged twice or more, and its figures are those of the agreement
functions on every preference judgment of the project (pairs judged once, gold and skips among them)."""

from __future__ import annotations

import random

import pytest

from annotation_web.accounts.models import Role, User
from annotation_web.labeling import selectors
from annotation_web.labeling.agreement import agreement_with_majority, krippendorff_alpha_nominal
from annotation_web.labeling.models import Candidate, FaceInput, Judgment, Outcome, Pair
from annotation_web.registry.models import ModelKind, ModelVersion
from tests.annotation_web.loop.test_leaderboard import _judgment, save_all


@pytest.mark.django_db
def test_agreement_figures_equal_those_of_every_judgment(make_project):
    project = make_project(pairs=0)
    version = ModelVersion.objects.create(kind=ModelKind.RESTORER, name="agree", version=1)
    people = User.objects.bulk_create([User(username=f"agree-{k}", role=Role.ANNOTATOR) for k in range(6)])
    rng = random.Random(3)
    judgments = []
    # batch "twice": pairs judged by 1-4 people; batch "once": every pair judged by one person only
    for index in range(30):
        batch = "once" if index >= 24 else "twice"
        face_input = FaceInput.objects.create(
            project=project, source_name=f"{index}.png", content_hash=f"a{index}", lq_key="lq"
        )
        a, b = (
            Candidate.objects.create(
                face_input=face_input, model_version=version, seed=seed, image_key=f"c/{index}/{seed}"
            )
            for seed in (0, 1)
        )
        pair = Pair.objects.create(
            project=project, face_input=face_input, candidate_a=a, candidate_b=b, batch=batch, open_slots=0
        )
        judges = rng.sample(people, 1 if batch == "once" else rng.randint(1, 4))
        for person in judges:
            outcome = rng.choice([Outcome.A, Outcome.A, Outcome.B, Outcome.TIE, Outcome.SKIP])
            judgments.append(_judgment(pair, person, outcome, is_gold=index % 7 == 0))
    save_all(judgments)

    figures = selectors.project_agreement(project=project)

    every = list(
        Judgment.objects.filter(pair__project=project, is_gold=False)
        .exclude(outcome=Outcome.SKIP)
        .values_list("pair_id", "annotator_id", "outcome", "pair__batch")
    )
    units: dict[int, list[str]] = {}
    for pair_id, _, outcome, _ in every:
        units.setdefault(pair_id, []).append(outcome)
    assert figures["judgments"] == len(every)
    assert figures["alpha"] == pytest.approx(krippendorff_alpha_nominal(units))
    assert figures["pairs_with_two_or_more"] == sum(len(v) >= 2 for v in units.values())
    batch_of = {pair_id: batch for pair_id, _, _, batch in every}
    assert (
        [row["batch"] for row in figures["per_batch"]] == sorted(set(batch_of.values())) == ["once", "twice"]
    )
    once = next(row for row in figures["per_batch"] if row["batch"] == "once")
    assert once == {"batch": "once", "alpha": None, "pairs_with_two_or_more": 0}
    majority = agreement_with_majority([(p, a, o) for p, a, o, _ in every])
    names = dict(User.objects.values_list("pk", "username"))
    assert figures["per_annotator_majority_agreement"] == [
        {"annotator": names[annotator], **stats} for annotator, stats in sorted(majority.items())
    ]
