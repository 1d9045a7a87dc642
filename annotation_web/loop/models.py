"""The loop: per project, a policy (what to do and when), the state (which restorer and reward model are in
use, the held-out inputs, the loop's job in flight) and the events (every decision with its reason).

A new restorer from RL is a *candidate*: it is evaluated on the held-out inputs and only a promotion (by the
loop when the policy says so, or by an engineer) puts it in use. Every change of what is in use is a
`VersionChange` row with who, when and why.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class LoopPolicy(models.Model):
    project = models.OneToOneField("labeling.Project", on_delete=models.CASCADE, related_name="loop_policy")
    enabled = models.BooleanField(default=False)
    # first restorer (supervised, `restorer.train` named config + top-level overrides)
    restorer_config = models.CharField(max_length=32, default="tiny")
    restorer_overrides = models.JSONField(default=dict, blank=True)
    # reward model
    min_new_judgments = models.PositiveIntegerField(default=500)
    reward_size = models.CharField(max_length=16, default="small")
    reward_max_steps = models.PositiveIntegerField(default=2000)
    # A new reward model (trained on more judgments) is put in use unless the one in use ranks the shared
    # held-out judgments better by more than this many standard errors of the paired difference: on 40-70 of
    # them two models a few points apart are a coin flip, and the loop waited on one for good (0: in use only
    # when not worse at all).
    reward_tolerance_se = models.FloatField(default=1.0)
    # RL
    rl_preset = models.CharField(max_length=32, default="tiny_preference")
    rl_overrides = models.JSONField(default=dict, blank=True)
    # generation: stochastic by default (eta 1), so that the samples of one input differ
    samples_per_input = models.PositiveIntegerField(default=4)
    pairs_budget = models.PositiveIntegerField(default=40)
    random_fraction = models.FloatField(default=0.2)
    cross_version_fraction = models.FloatField(default=0.25)
    # The share of a generation's chosen pairs asked of two annotators (Pair.overlap 2) so that agreement stays
    # measured with a project overlap of 1 (the cross-version pairs keep the project's overlap).
    agreement_share = models.FloatField(default=0.2)
    num_steps = models.PositiveIntegerField(default=20)
    eta = models.FloatField(default=1.0)
    # evaluation and promotion
    held_out_fraction = models.FloatField(default=0.2)
    eval_seeds = models.PositiveIntegerField(default=2)
    psnr_drop_limit_db = models.FloatField(default=0.5)
    # The largest PSNR drop of a promoted candidate against the project's baseline, the root of the in-use
    # restorer's lineage (the supervised restorer RL started from): without it a limit per promotion lets
    # fidelity drift round after round. None: no such limit.
    baseline_psnr_drop_limit_db = models.FloatField(null=True, blank=True, default=None)
    auto_promote = models.BooleanField(default=True)
    # Human judgments of new-vs-in-use pairs from which the leaderboard is consulted: with at least this many,
    # a candidate the leaderboard finds worse than the restorer in use is not promoted.
    leaderboard_min_judgments = models.PositiveIntegerField(default=20)
    # Seconds between two scheduled ticks of this project: the beat fires every PREF_LOOP_TICK_SECONDS and a
    # project whose last tick is younger than this is left alone (nothing recorded).
    tick_seconds = models.PositiveIntegerField(default=20)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"loop policy of {self.project_id} ({'on' if self.enabled else 'off'})"


class LoopState(models.Model):
    project = models.OneToOneField("labeling.Project", on_delete=models.CASCADE, related_name="loop_state")
    restorer = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reward = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # An RL result waiting for its evaluation.
    candidate = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The reward model the in-use restorer line was last tuned against (RL runs once per new reward model).
    tuned_with = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The restorer whose candidates were last generated (a restorer put in use without them gets a generation).
    generated_from = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The restorer that was in use before the current one (cross-version pairs compare the two).
    previous_restorer = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Chosen once per project and never used for RL.
    held_out_input_ids = models.JSONField(default=list, blank=True)
    round = models.PositiveIntegerField(default=1)
    # The reward model the loop trained last, in use or not (one that did not beat the one in use stays out
    # of use; new judgments are counted from the newer of the two, so it is not retrained at once).
    reward_trained = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # kind -> ISO time of its last failure: a failed kind is not started again before a pause.
    failures = models.JSONField(default=dict, blank=True)
    # When the project was last ticked (scheduled or by hand); the beat skips it until `tick_seconds` passed.
    ticked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"loop state of {self.project_id}: round {self.round}, restorer {self.restorer_id}, reward {self.reward_id}"


class VersionChange(models.Model):
    class Action(models.TextChoices):
        PUT_IN_USE = "put_in_use", "Put in use"
        PROMOTE = "promote", "Promote"
        ROLLBACK = "rollback", "Roll back"

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="version_changes")
    kind = models.CharField(max_length=16)  # registry.ModelKind: restorer or reward
    action = models.CharField(max_length=16, choices=Action.choices)
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    previous = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.version_id} ({self.reason[:60]})"


class LoopEvent(models.Model):
    class Decision(models.TextChoices):
        STARTED = "started", "Started a job"
        WAITING = "waiting", "Waiting"
        SKIPPED = "skipped", "Skipped"
        APPLIED = "applied", "Applied a job's result"
        FAILED = "failed", "A job failed"
        PROMOTED = "promoted", "Promoted"
        NOT_PROMOTED = "not_promoted", "Not promoted"
        ROLLED_BACK = "rolled_back", "Rolled back"

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="loop_events")
    round = models.PositiveIntegerField()
    decision = models.CharField(max_length=16, choices=Decision.choices)
    reason = models.TextField()
    inputs = models.JSONField(default=dict, blank=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["project", "-created_at"], name="loop_event_project_created")]

    def __str__(self) -> str:
        return f"round {self.round} {self.decision}: {self.reason[:80]}"
