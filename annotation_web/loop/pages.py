"""The engineers' pages of the loop: two restorer versions side by side (`/projects/<slug>/compare/`), with
promote and roll back, and the loop's page (`/projects/<slug>/loop/`): its policy with an edit form, the
current round and its jobs, the versions in use with who changed them and why, and every decision, newest first.

Thin views: the read side is `loop.comparison` and `loop.selectors`; a promotion, a roll-back and a policy
change go through `loop.services`, validated by the API's own serializers (`loop.api`), so a page and the API
accept and refuse the same things. Engineers act; managers read (a POST of theirs answers 403); annotators are
refused every page (403); a project one is not a member of, and a version of another project, answer 404.
A refused form is shown again with what was typed and why it was refused, and nothing is saved.
"""

from __future__ import annotations

import json
from typing import Any, cast
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import models
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation_web.errors import NotFound, ServiceError
from annotation_web.labeling import access
from annotation_web.labeling.models import Project
from annotation_web.loop import comparison, selectors, services
from annotation_web.loop.api import LoopPolicySerializer, PromoteRequest, RollbackRequest
from annotation_web.loop.models import LoopPolicy, VersionChange

EVENTS_PER_PAGE = 25
CHANGES_SHOWN = 20
# The policy form, by section: (field, what it means, with its unit). A field of the policy missing here is
# shown under "Other settings", so the form always carries every field (an unchecked box then means off).
POLICY_SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "The loop",
        (
            ("enabled", "run the loop on its schedule"),
            ("auto_promote", "put a candidate that passes the evaluation in use without asking"),
            ("tick_seconds", "seconds between two ticks of this project (s)"),
        ),
    ),
    (
        "First restorer (supervised)",
        (
            ("restorer_config", "named config of restorer.train"),
            ("restorer_overrides", "JSON object of top-level overrides of that config"),
        ),
    ),
    (
        "Reward model",
        (
            ("min_new_judgments", "new non-gold judgments before another reward model is trained (count)"),
            ("reward_size", "reward-model size"),
            ("reward_max_steps", "training steps at most (steps)"),
            (
                "reward_tolerance_se",
                "how far a new model may trail the one in use on shared held-out judgments and still replace it"
                " (standard errors of the difference; 0: not at all)",
            ),
        ),
    ),
    (
        "RL fine-tune",
        (
            ("rl_preset", "named RL preset"),
            ("rl_overrides", "JSON object of overrides of the preset"),
        ),
    ),
    (
        "Generation",
        (
            ("samples_per_input", "samples per input (count)"),
            ("pairs_budget", "pairs chosen per generation (count)"),
            ("random_fraction", "share of pairs chosen at random (0–1)"),
            ("cross_version_fraction", "share of pairs against the previous restorer (0–1)"),
            ("agreement_share", "share of pairs asked of two annotators (0–1)"),
            ("num_steps", "denoising steps (steps)"),
            ("eta", "sampling noise: 0 deterministic, 1 fully stochastic (0–1)"),
        ),
    ),
    (
        "Evaluation and promotion",
        (
            ("held_out_fraction", "share of inputs held out for evaluation, chosen once (0.05–0.5)"),
            ("eval_seeds", "seeds per held-out input (count)"),
            ("psnr_drop_limit_db", "largest PSNR drop a promoted candidate may have (dB)"),
            (
                "baseline_psnr_drop_limit_db",
                "largest PSNR drop against the baseline, the restorer RL started from (dB; empty: none)",
            ),
            (
                "leaderboard_min_judgments",
                "new-vs-in-use judgments before the leaderboard is consulted (count)",
            ),
        ),
    ),
)


def _require_reader(user) -> None:
    if not (user.is_engineer or user.is_manager):
        raise PermissionDenied("The loop's pages are for ML engineers and managers.")


def _require_engineer(user) -> None:
    if not user.is_engineer:
        raise PermissionDenied("Only ML engineers change the loop (managers read it).")


def _project(user, slug: str) -> Project:
    try:
        return access.project_get_for_member(user=user, slug=slug)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


def _version_id(raw: str | None, name: str) -> int | None:
    """A version id from the query or a form: None when not given; a clear refusal when not an id."""
    text = (raw or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ServiceError(f"{name} must be a model version id (a whole number), not {text[:40]!r}")
    return int(text)


def _change_shown(project: Project, raw: str | None) -> VersionChange | None:
    """The version change a redirect after promote or roll back names (`?change=`), of this project only."""
    text = (raw or "").strip()
    if not text.isdigit():
        return None
    return selectors.version_changes_list(project=project).filter(pk=int(text)).first()


def _serializer_errors(errors: Any) -> list[str]:
    """A serializer's refusals as sentences ("reason: This field may not be blank.")."""
    lines = []
    for field, messages in dict(errors).items():
        for message in messages if isinstance(messages, list) else [messages]:
            lines.append(str(message) if field == "non_field_errors" else f"{field}: {message}")
    return lines


# --- compare ----------------------------------------------------------------------------------------------


def _compare_response(
    request,
    project: Project,
    *,
    a_raw: str | None,
    b_raw: str | None,
    errors: list[str] | None = None,
    reason: str = "",
    status: int = 200,
) -> HttpResponse:
    errors = list(errors or [])
    a_id = b_id = None
    try:
        a_id, b_id = _version_id(a_raw, "a"), _version_id(b_raw, "b")
    except ServiceError as exc:
        errors.append(exc.message)
        status = 400
    if status == 200 and (a_id is None or b_id is None):
        # What is not chosen comes from the defaults (in use against the newest candidate), never the same twice.
        default_a, default_b = comparison.comparison_defaults(project=project)
        if a_id is None and b_id is None:
            a_id, b_id = default_a, default_b
        elif a_id is None:
            a_id = default_a if default_a != b_id else default_b
        else:
            b_id = default_b if default_b != a_id else default_a
    offered = list(comparison.project_restorers(project=project)[: comparison.VERSIONS_OFFERED])
    data = None
    if a_id is not None and b_id is not None:
        try:
            a = comparison.project_restorer_get(project=project, pk=a_id)
            b = comparison.project_restorer_get(project=project, pk=b_id)
        except NotFound as exc:
            raise Http404(str(exc)) from exc
        if a.pk == b.pk:
            errors.append("a and b are the same version: choose two different versions")
            status = 400
        else:
            data = comparison.restorer_comparison(project=project, a=a, b=b)
        offered += [version for version in (a, b) if version not in offered]  # older than the list reaches
    context = {
        "project": project,
        "offered": offered,
        "a_id": a_id,
        "b_id": b_id,
        "comparison": data,
        "errors": errors,
        "reason": reason,
        "change": _change_shown(project, request.GET.get("change")),
        "can_edit": request.user.is_engineer,
        "can_read_jobs": request.user.is_engineer,
    }
    return render(request, "loop/compare.html", context, status=status)


@require_GET
@login_required
def compare(request, slug: str):
    _require_reader(request.user)
    project = _project(request.user, slug)
    return _compare_response(request, project, a_raw=request.GET.get("a"), b_raw=request.GET.get("b"))


@require_POST
@login_required
def compare_promote(request, slug: str):
    """Put one of the two compared versions in use (`services.loop_promote`), with the reason required;
    back to the compare page, which then shows the change (who, when, why)."""
    _require_engineer(request.user)
    project = _project(request.user, slug)
    a_raw, b_raw = request.POST.get("a"), request.POST.get("b")
    reason = request.POST.get("reason", "")
    try:
        version_id = _version_id(request.POST.get("version"), "version")
    except ServiceError as exc:
        return _compare_response(
            request, project, a_raw=a_raw, b_raw=b_raw, errors=[exc.message], reason=reason, status=400
        )
    if version_id is None:
        return _compare_response(
            request,
            project,
            a_raw=a_raw,
            b_raw=b_raw,
            errors=["choose the version to promote"],
            reason=reason,
            status=400,
        )
    try:
        version = comparison.project_restorer_get(project=project, pk=version_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    body = PromoteRequest(data={"restorer_id": version.pk, "reason": reason.strip()})
    if not body.is_valid():
        return _compare_response(
            request,
            project,
            a_raw=a_raw,
            b_raw=b_raw,
            errors=_serializer_errors(body.errors),
            reason=reason,
            status=400,
        )
    try:
        change = services.loop_promote(project=project, user=request.user, **body.validated_data)
    except ServiceError as exc:
        return _compare_response(
            request, project, a_raw=a_raw, b_raw=b_raw, errors=[exc.message], reason=reason, status=exc.status
        )
    query = {key: value for key, value in (("a", a_raw), ("b", b_raw)) if value}
    return redirect(
        f"{reverse('loop-compare', args=[project.slug])}?{urlencode({**query, 'change': change.pk})}"
    )


# --- the loop page ----------------------------------------------------------------------------------------


def _field_input(name: str) -> dict[str, Any]:
    """How the form shows a policy field: its input type and the bounds the API's serializer enforces."""
    field = LoopPolicy._meta.get_field(name)
    bounds = cast(dict[str, Any], LoopPolicySerializer.Meta.extra_kwargs.get(name, {}))
    if isinstance(field, models.BooleanField):
        kind = "checkbox"
    elif isinstance(field, models.JSONField):
        kind = "json"
    elif isinstance(field, models.FloatField):
        kind = "float"
    elif isinstance(field, models.PositiveIntegerField | models.IntegerField):
        kind = "integer"
    else:
        kind = "text"
    return {
        "kind": kind,
        "optional": bool(field.null),
        "min": bounds.get("min_value", 0 if kind == "integer" else None),
        "max": bounds.get("max_value"),
        "max_length": getattr(field, "max_length", None),
    }


def _shown_value(kind: str, value: Any) -> Any:
    if value is None:
        return ""  # an optional setting left unset: an empty input
    if kind == "json":
        return json.dumps(value, sort_keys=True)
    if kind == "checkbox":
        return bool(value)
    return value


def _policy_form(
    policy: LoopPolicy, submitted=None, errors: dict[str, list[str]] | None = None
) -> list[dict]:
    """The form's sections and fields, with the stored values, or what was typed when it was refused."""
    placed = {name for _, fields in POLICY_SECTIONS for name, _ in fields}
    others = tuple((name, "") for name in services.POLICY_FIELDS if name not in placed)
    sections = [*POLICY_SECTIONS, *((("Other settings", others),) if others else ())]
    shown = []
    for title, fields in sections:
        rows = []
        for name, help_text in fields:
            spec = _field_input(name)
            if submitted is None:
                value = _shown_value(spec["kind"], getattr(policy, name))
            elif spec["kind"] == "checkbox":
                value = name in submitted
            else:
                value = submitted.get(name, "")
            rows.append(
                {
                    "name": name,
                    "help": help_text,
                    "value": value,
                    "errors": (errors or {}).get(name, []),
                    **spec,
                }
            )
        shown.append({"title": title, "fields": rows})
    return shown


def _policy_precheck(submitted) -> dict[str, list[str]]:
    """What the serializer would let through silently or not say clearly: an emptied number (a form field the
    serializer skips when blank) and JSON that is not an object (the overrides are settings by name)."""
    errors: dict[str, list[str]] = {}
    for name in services.POLICY_FIELDS:
        spec = _field_input(name)
        kind = spec["kind"]
        raw = submitted.get(name)
        if spec["optional"] and raw is not None and not raw.strip():
            continue  # emptied on purpose: the setting is unset (the serializer reads it as null)
        if kind in ("integer", "float", "text", "json") and (raw is None or not raw.strip()):
            errors[name] = ["A value is required."]
        elif kind == "json":
            try:
                parsed = json.loads(raw)
            except ValueError:
                errors[name] = ["Not valid JSON."]
                continue
            if not isinstance(parsed, dict):
                errors[name] = ['A JSON object is required (settings by name, e.g. {"max_steps": 100}).']
    return errors


def _loop_response(
    request,
    project: Project,
    *,
    submitted=None,
    field_errors: dict[str, list[str]] | None = None,
    errors: list[str] | None = None,
    loaded_at: str | None = None,
    rollback_reason: str = "",
    status: int = 200,
) -> HttpResponse:
    policy = selectors.loop_policy_get(project=project)
    state = selectors.loop_state_get(project=project)
    events = Paginator(selectors.loop_events_list(project=project), EVENTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    defaults = comparison.comparison_defaults(project=project)
    context = {
        "project": project,
        "policy": policy,
        "policy_saved": policy.pk is not None,
        "policy_version": loaded_at if loaded_at is not None else _policy_version(policy),
        "form": _policy_form(policy, submitted, field_errors),
        "field_errors": field_errors or {},
        "errors": errors or [],
        "state": state,
        "round_jobs": selectors.loop_round_jobs(project=project, state=state),
        "changes": list(selectors.version_changes_list(project=project)[:CHANGES_SHOWN]),
        "events": events,
        "compare_default": defaults if None not in defaults else None,
        "change": _change_shown(project, request.GET.get("change")),
        "saved": request.GET.get("saved") == "1",
        "rollback_reason": rollback_reason,
        "can_edit": request.user.is_engineer,
        "can_read_jobs": request.user.is_engineer,
    }
    return render(request, "loop/loop.html", context, status=status)


def _policy_version(policy: LoopPolicy) -> str:
    """What the form remembers of the policy it was opened on: a save over a newer change is refused."""
    return policy.updated_at.isoformat() if policy.pk and policy.updated_at else ""


@require_http_methods(["GET", "POST"])
@login_required
def loop_page(request, slug: str):
    _require_reader(request.user)
    if request.method == "POST":
        _require_engineer(request.user)
    project = _project(request.user, slug)
    if request.method == "GET":
        return _loop_response(request, project)
    submitted = request.POST
    policy = selectors.loop_policy_get(project=project)
    opened_on = submitted.get("policy_version", "")
    if opened_on != _policy_version(policy):
        by = policy.updated_by.username if policy.updated_by else "the loop"
        return _loop_response(
            request,
            project,
            submitted=submitted,
            errors=[
                f"The policy was changed by {by} at {policy.updated_at:%Y-%m-%d %H:%M:%S} UTC after this form was "
                "opened: nothing was saved. Your values are below; compare them with the stored ones and save again."
            ],
            status=409,
        )
    field_errors = _policy_precheck(submitted)
    if field_errors:
        return _loop_response(request, project, submitted=submitted, field_errors=field_errors, status=400)
    body = LoopPolicySerializer(policy, data=submitted)
    if not body.is_valid():
        errors = {name: [str(m) for m in messages] for name, messages in body.errors.items()}
        general = errors.pop("non_field_errors", [])
        return _loop_response(
            request, project, submitted=submitted, field_errors=errors, errors=general, status=400
        )
    services.loop_policy_update(project=project, user=request.user, changes=body.validated_data)
    return redirect(f"{reverse('loop-page', args=[project.slug])}?saved=1")


@require_POST
@login_required
def loop_rollback(request, slug: str):
    """Put back the version in use before the current one (`services.loop_rollback`), reason required; back to
    the page the form was on (`back`: the compare page with its a and b, or the loop page)."""
    _require_engineer(request.user)
    project = _project(request.user, slug)
    back = request.POST.get("back", "loop")
    a_raw, b_raw = request.POST.get("a"), request.POST.get("b")
    reason = request.POST.get("reason", "")
    body = RollbackRequest(data={"kind": request.POST.get("kind", "restorer"), "reason": reason.strip()})
    try:
        if not body.is_valid():
            raise ServiceError("; ".join(_serializer_errors(body.errors)))
        change = services.loop_rollback(project=project, user=request.user, **body.validated_data)
    except ServiceError as exc:
        errors, status = [exc.message], exc.status
        if back == "compare":
            return _compare_response(
                request, project, a_raw=a_raw, b_raw=b_raw, errors=errors, reason=reason, status=status
            )
        return _loop_response(request, project, errors=errors, rollback_reason=reason, status=status)
    if back == "compare":
        query = {key: value for key, value in (("a", a_raw), ("b", b_raw)) if value}
        return redirect(
            f"{reverse('loop-compare', args=[project.slug])}?{urlencode({**query, 'change': change.pk})}"
        )
    return redirect(f"{reverse('loop-page', args=[project.slug])}?{urlencode({'change': change.pk})}")
