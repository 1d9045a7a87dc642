"""The annotation domain: projects, face inputs, candidates (of a `registry.ModelVersion`), pairs, reservations,
judgments.

Queue invariant: for every non-gold pair, `open_slots == max(0, overlap - judgments(non-skip) - live
reservations)` (below zero only after the overlap was lowered under what was already judged or held), where a
pair's overlap is the project's, or its own `Pair.overlap` where that is higher.
It is only changed inside the services, under a row lock of the pair, so two annotators racing can never
take a pair beyond its overlap.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

# Model versions belong to the registry app; ModelKind is re-exported for callers that import it from here.
from annotation_web.registry.models import ModelKind, ModelVersion  # noqa: F401


class Outcome(models.TextChoices):
    A = "a", "A preferred"
    B = "b", "B preferred"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"
    SKIP = "skip", "Skipped"


PREFERENCE_OUTCOMES = (Outcome.A, Outcome.B, Outcome.TIE, Outcome.BOTH_BAD)


class Side(models.TextChoices):
    A = "a", "A"
    B = "b", "B"


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Judgments wanted per pair.")
    reservation_ttl_seconds = models.PositiveIntegerField(default=300)
    gold_rate = models.FloatField(default=0.1, help_text="Share of served pairs that are gold pairs.")
    degradation_preset = models.CharField(max_length=32, default="gfpgan")
    resolution = models.PositiveIntegerField(default=64)
    # When `overlap` was last changed: pairs judged or held beyond a lowered overlap are legitimate only if
    # nothing was reserved on them since (`labeling.queue.queue_invariant_violations`).
    overlap_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_share"
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class FaceInput(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="inputs")
    source_name = models.CharField(max_length=500, help_text="File name or key the face was imported from.")
    content_hash = models.CharField(max_length=64, help_text="sha256 of the original file's bytes.")
    hq_key = models.CharField(max_length=500, blank=True, help_text="Empty when the clean face is unknown.")
    lq_key = models.CharField(max_length=500)
    degradation = models.JSONField(default=dict, blank=True)
    instruction = models.TextField(blank=True)
    batch = models.CharField(max_length=100, blank=True, help_text="Import batch the input arrived in.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "content_hash"], name="input_unique_per_project")
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.source_name}"


# In a candidate's `generation`, the mark of an edit of a sample (an unsharp mask the RL ranks, shown to people so
# that its reward model learns such changes): it is not what its version restores, and comparisons of versions
# (cross-version pairs, the leaderboard) leave it out.
EDIT_MARK = "-edit"


class Candidate(models.Model):
    face_input = models.ForeignKey(FaceInput, on_delete=models.CASCADE, related_name="candidates")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="candidates")
    seed = models.BigIntegerField(default=0)
    # What made it besides (model, seed): `job-<id>` for a generation job (two jobs with other settings, say
    # fewer steps, make other candidates, never new bytes under old ones); empty for classical and reference.
    generation = models.CharField(max_length=100, blank=True, default="")
    # A random key (`c/<uuid>.png`) written once: it says nothing of model, seed, input or gold status, and the
    # engineer-facing structure lives in this row, not in the key.
    image_key = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["face_input", "model_version", "seed", "generation"], name="candidate_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_version} seed {self.seed} on input {self.face_input_id}"


class Pair(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pairs")
    face_input = models.ForeignKey(FaceInput, on_delete=models.CASCADE, related_name="pairs")
    candidate_a = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="pairs_as_a")
    candidate_b = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="pairs_as_b")
    is_gold = models.BooleanField(default=False)
    gold_outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    batch = models.CharField(max_length=100, blank=True)
    priority = models.IntegerField(default=0, help_text="Lower is served first.")
    selection_reason = models.CharField(max_length=200, blank=True)
    selection_score = models.FloatField(null=True, blank=True)
    open_slots = models.IntegerField(default=1)
    judgment_count = models.IntegerField(default=0)
    # Judgments wanted of this pair at least (null: the project's overlap alone), e.g. 2 for the share of pairs
    # the loop keeps judged twice so that agreement stays measured; the project's overlap wins when higher.
    overlap = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(candidate_a=F("candidate_b")), name="pair_two_different_candidates"
            ),
            models.CheckConstraint(condition=Q(open_slots__gte=0), name="pair_open_slots_never_negative"),
            models.CheckConstraint(
                condition=Q(is_gold=False) | ~Q(gold_outcome=""), name="gold_pair_has_known_outcome"
            ),
            models.UniqueConstraint(fields=["candidate_a", "candidate_b"], name="pair_unique"),
            models.CheckConstraint(
                condition=Q(overlap__isnull=True) | Q(overlap__gte=1), name="pair_overlap_positive"
            ),
        ]
        indexes = [
            # The queue: open non-gold pairs of a project in serving order.
            models.Index(
                fields=["project", "priority", "id"],
                name="pair_open_queue",
                condition=Q(open_slots__gt=0, is_gold=False),
            ),
            models.Index(fields=["project", "is_gold"], name="pair_project_gold"),
        ]

    def __str__(self) -> str:
        return f"pair {self.pk} ({'gold' if self.is_gold else 'open ' + str(self.open_slots)})"


class ReservationState(models.TextChoices):
    ACTIVE = "active", "Active"
    SUBMITTED = "submitted", "Submitted"
    EXPIRED = "expired", "Expired"


class Reservation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="reservations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reservations"
    )
    shown_left = models.CharField(max_length=1, choices=Side.choices)
    state = models.CharField(max_length=16, choices=ReservationState.choices, default=ReservationState.ACTIVE)
    created_at = models.DateTimeField()
    # When the page put the pair on screen (a prefetched pair waits unseen): the server-side duration of its
    # judgment counts from here when set, else from `created_at`.
    shown_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["annotator", "state", "created_at"], name="reservation_by_annotator"),
            models.Index(fields=["state", "expires_at"], name="reservation_expiry"),
        ]

    def __str__(self) -> str:
        return f"reservation {self.pk} of pair {self.pair_id} ({self.state})"


class Judgment(models.Model):
    pair = models.ForeignKey(Pair, on_delete=models.PROTECT, related_name="judgments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judgments"
    )
    reservation = models.OneToOneField(Reservation, on_delete=models.PROTECT, related_name="judgment")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    shown_left = models.CharField(max_length=1, choices=Side.choices)
    idempotency_key = models.CharField(max_length=100)
    server_duration_ms = models.PositiveIntegerField()
    client_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    is_gold = models.BooleanField(default=False)
    gold_correct = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pair", "annotator"], name="one_judgment_per_pair_and_annotator"),
            models.UniqueConstraint(fields=["annotator", "idempotency_key"], name="judgment_idempotency_key"),
        ]
        indexes = [models.Index(fields=["annotator", "created_at"], name="judgment_by_annotator")]

    def __str__(self) -> str:
        return f"judgment {self.pk}: pair {self.pair_id} -> {self.outcome}"


class JudgmentSnapshot(models.Model):
    """A frozen, numbered set of a project's judgments: exactly the rows the preference export gave up to
    `up_to_judgment_id` when it was taken (gold rows included, skips not), written once to the storage under
    `rows_key` as canonical JSONL whose sha256 is `sha256`. A reward model cites the snapshot it was trained
    on, so it can be retrained from exactly its data whatever was judged or changed afterwards
    (`labeling.snapshots`)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judgment_snapshots")
    number = models.PositiveIntegerField(help_text="1, 2, … per project.")
    up_to_judgment_id = models.BigIntegerField()
    # Ascending ids of the judgments in the snapshot (a JSON list: fine up to ~1e5 judgments a snapshot).
    judgment_ids = models.JSONField(default=list)
    count = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, help_text="sha256 of the canonical JSONL rows.")
    rows_key = models.CharField(max_length=500, help_text="Storage key of the frozen JSONL rows.")
    schema_version = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="judgment_snapshot_number_per_project")
        ]
        ordering = ["project_id", "number"]

    def __str__(self) -> str:
        return f"snapshot {self.number} of project {self.project_id} ({self.count} judgments)"
