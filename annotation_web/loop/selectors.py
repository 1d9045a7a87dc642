"""The loop's read side: policies, state, events, the history of what was in use, and the human leaderboard."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.db.models import Count, ExpressionWrapper, F, FloatField, Q, QuerySet

from annotation_web.jobs.models import Job
from annotation_web.labeling.models import EDIT_MARK, Judgment, Outcome, Project
from annotation_web.labeling.pairs import trusted_annotators
from annotation_web.loop.leaderboard import FIRST, SECOND, TIE, Leaderboard, leaderboard_fit
from annotation_web.loop.models import LoopEvent, LoopPolicy, LoopState, VersionChange
from annotation_web.registry.models import ModelKind, ModelVersion


def loop_policy_get(*, project: Project) -> LoopPolicy:
    """The project's policy, or the defaults (unsaved, disabled) when none was stored yet."""
    return LoopPolicy.objects.filter(project=project).first() or LoopPolicy(project=project)


def loop_state_get(*, project: Project) -> LoopState:
    return LoopState.objects.filter(project=project).first() or LoopState(project=project)


def loop_enabled_project_ids() -> list[int]:
    return list(
        LoopPolicy.objects.filter(enabled=True).order_by("project_id").values_list("project_id", flat=True)
    )


def loop_events_list(*, project: Project) -> QuerySet[LoopEvent]:
    return LoopEvent.objects.filter(project=project).select_related("job").order_by("-pk")


def version_changes_list(*, project: Project) -> QuerySet[VersionChange]:
    return VersionChange.objects.filter(project=project).select_related("version", "previous", "by")


def judgments_since(*, project: Project, reward: ModelVersion | None) -> int:
    """Non-gold, non-skip judgments newer than those the reward model `reward` was trained on."""
    mark = int((reward.config.get("lineage") or {}).get("up_to_judgment_id", 0)) if reward else 0
    return (
        Judgment.objects.filter(pair__project=project, pair__is_gold=False, is_gold=False, pk__gt=mark)
        .exclude(outcome=Outcome.SKIP)
        .count()
    )


# --- the human leaderboard ---------------------------------------------------------------------------------

# "Both bad" counts as a tie: the annotator preferred neither candidate, which is what a tie says in
# Davidson's model (as arenas count "tie (both bad)"). Left out, a version whose candidates are often both bad
# beside another would be ranked on its few decisive answers alone.
LEADERBOARD_OUTCOMES = {Outcome.A: FIRST, Outcome.B: SECOND, Outcome.TIE: TIE, Outcome.BOTH_BAD: TIE}
LEADERBOARD_RESAMPLES = 200
LEADERBOARD_LEVEL = 0.95


def annotators_flagged(*, project: Project) -> QuerySet:
    """Ids of the annotators whose gold answers fall short: at least as many answered as
    `labeling.pairs.trusted_annotators` asks for, and a share right below its accuracy (its defaults are the
    one place these thresholds live). A subquery: nothing is read until it is used."""
    thresholds = trusted_annotators.__kwdefaults__ or {}
    return (
        Judgment.objects.filter(pair__project=project, is_gold=True, gold_correct__isnull=False)
        .values("annotator_id")
        .annotate(answered=Count("pk"), correct=Count("pk", filter=Q(gold_correct=True)))
        .filter(answered__gte=thresholds.get("min_gold_answered", 5))
        .filter(
            correct__lt=ExpressionWrapper(
                F("answered") * thresholds.get("min_gold_accuracy", 0.8), output_field=FloatField()
            )
        )
        .values("annotator_id")
    )


def leaderboard_judgments(
    *, project: Project, kinds: Sequence[str] = (ModelKind.RESTORER,)
) -> list[tuple[int, int, int, int]]:
    """(version of a, version of b, outcome code, count) of the judgments the leaderboard is fitted on, counted
    by the database in one query: pairs of two candidates of different versions (of `kinds`), gold pairs and
    gold judgments left out, flagged annotators left out, skips left out, and pairs with an edit of a sample
    (`labeling.models.EDIT_MARK`: not what its version restores)."""
    rows = (
        Judgment.objects.filter(
            pair__project=project,
            pair__is_gold=False,
            is_gold=False,
            outcome__in=list(LEADERBOARD_OUTCOMES),
            pair__candidate_a__model_version__kind__in=list(kinds),
            pair__candidate_b__model_version__kind__in=list(kinds),
        )
        .exclude(pair__candidate_a__model_version_id=F("pair__candidate_b__model_version_id"))
        .exclude(pair__candidate_a__generation__contains=EDIT_MARK)
        .exclude(pair__candidate_b__generation__contains=EDIT_MARK)
        .exclude(annotator_id__in=annotators_flagged(project=project))
        .values_list("pair__candidate_a__model_version_id", "pair__candidate_b__model_version_id", "outcome")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return [(a, b, LEADERBOARD_OUTCOMES[outcome], n) for a, b, outcome, n in rows]


def judgments_between(*, project_id: int, first: int, second: int) -> int:
    """Judgments the leaderboard counts between two versions (one aggregate query; no fit)."""
    project = Project.objects.get(pk=project_id)
    return sum(n for a, b, _, n in leaderboard_judgments(project=project) if {a, b} == {first, second})


def project_leaderboard(
    *,
    project: Project,
    kinds: Sequence[str] = (ModelKind.RESTORER,),
    resamples: int = LEADERBOARD_RESAMPLES,
    seed: int = 0,
) -> Leaderboard:
    """The fitted leaderboard of the project's versions (keyed by `ModelVersion` id)."""
    return leaderboard_fit(
        leaderboard_judgments(project=project, kinds=kinds),
        resamples=resamples,
        seed=seed,
        level=LEADERBOARD_LEVEL,
    )


def project_leaderboard_data(*, project: Project, kinds: Sequence[str] = (ModelKind.RESTORER,)) -> dict:
    """What the API and the dashboards plot: versions best first with score, 95% interval and counts."""
    return leaderboard_data_of(project=project, board=project_leaderboard(project=project, kinds=kinds))


def leaderboard_data_of(*, project: Project, board: Leaderboard) -> dict:
    """`project_leaderboard_data` of a board already fitted (a page that also reads the board's differences
    fits it once)."""
    names: dict[Hashable, ModelVersion] = {
        m.pk: m for m in ModelVersion.objects.filter(pk__in=list(board.versions))
    }
    in_use = LoopState.objects.filter(project=project).values_list("restorer_id", flat=True).first()
    return {
        "project": project.slug,
        "model": "Bradley-Terry with ties (Davidson)",
        "score": "centred log-strength: a difference d means odds e^d to 1",
        "level": LEADERBOARD_LEVEL,
        "resamples": board.resamples,
        "seed": board.seed,
        "judgments": board.judgments,
        "tie_strength": board.tie_strength,
        "both_bad": "tie",
        "excluded": "gold pairs, skips, same-version pairs, edits of samples, annotators flagged by their gold accuracy",
        "flagged_annotators": annotators_flagged(project=project).count(),
        "versions": [
            {
                "rank": rank,
                "version_id": row.version,
                "version": str(names[row.version]),
                "name": names[row.version].name,
                "number": names[row.version].version,
                "kind": names[row.version].kind,
                "in_use": row.version == in_use,
                "score": row.score,
                "interval": [row.lower, row.upper],
                "judgments": row.judgments,
                "wins": row.wins,
                "losses": row.losses,
                "ties": row.ties,
            }
            for rank, row in enumerate(board.rows, start=1)
        ],
    }


def version_statuses(*, user: AbstractUser | AnonymousUser) -> dict[int, list[dict[str, str]]]:
    """Version id -> [{"status", "project"}] over the projects `user` belongs to (all for a superuser), read
    from the loop (two queries): `in use` (its restorer or reward model now), `candidate` (an RL result
    waiting for its evaluation), `retired` (was in use, or replaced by a promotion or a roll-back, and is not
    now). A version the loop never touched has no entry."""
    states = LoopState.objects.all()
    changes = VersionChange.objects.all()
    if not user.is_authenticated:
        return {}
    if not user.is_superuser:
        states = states.filter(project__memberships__user_id=user.pk)
        changes = changes.filter(project__memberships__user_id=user.pk)
    found: dict[int, dict[str, str]] = {}  # version id -> project slug -> status
    in_use: set[tuple[int, str]] = set()
    for restorer, reward, candidate, previous, slug in states.values_list(
        "restorer_id", "reward_id", "candidate_id", "previous_restorer_id", "project__slug"
    ):
        for version_id in (restorer, reward):
            if version_id is not None:
                found.setdefault(version_id, {})[slug] = "in use"
                in_use.add((version_id, slug))
        if candidate is not None and (candidate, slug) not in in_use:
            found.setdefault(candidate, {})[slug] = "candidate"
        if previous is not None and (previous, slug) not in in_use:
            found.setdefault(previous, {}).setdefault(slug, "retired")
    for version_id, previous, slug in changes.values_list(
        "version_id", "previous_id", "project__slug"
    ).distinct():
        for one in (version_id, previous):
            if one is not None and (one, slug) not in in_use:
                found.setdefault(one, {}).setdefault(slug, "retired")
    return {
        version_id: [{"status": status, "project": slug} for slug, status in sorted(by_project.items())]
        for version_id, by_project in found.items()
    }


# --- the loop page -----------------------------------------------------------------------------------------


def loop_round_jobs(*, project: Project, state: LoopState) -> list[Job]:
    """The jobs of the project's current round, oldest first: those the round's events name, and the loop's job
    in flight (one query)."""
    named = LoopEvent.objects.filter(project=project, round=state.round, job__isnull=False).values("job_id")
    jobs = Job.objects.filter(project=project).filter(Q(pk__in=named) | Q(pk=state.job_id or 0))
    return list(jobs.order_by("pk"))
