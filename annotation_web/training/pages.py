"""The engineers' pages that start jobs: `/projects/<slug>/jobs/new/` lists the kinds, and one form per kind
(`/projects/<slug>/jobs/new/<kind>/`) shows what the job will use (the restorer and reward model in use, the
candidate waiting for its evaluation, the held-out inputs, the judgments a reward job would snapshot, the named
configs with their values) and queues it.

A form is turned into the request the JSON API takes and checked by the API's own serializer
(`training.api.JOB_REQUESTS`; imports: `labeling.serializers.ImportRequestSerializer`), then queued by the same
service: a bad value is shown beside its field, with the API's message, and nothing is queued. Form posts count
against the API's `jobs` throttle (one budget per engineer). Annotators and managers are refused (403); a project
the engineer is not a member of answers 404, as in the API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.throttling import UserRateThrottle

from annotation_web import ml_bridge
from annotation_web.accounts.models import User
from annotation_web.errors import NotFound, ServiceError
from annotation_web.labeling import access
from annotation_web.labeling import selectors as labeling_selectors
from annotation_web.labeling.import_jobs import KIND as IMPORT_KIND
from annotation_web.labeling.import_jobs import import_job_create
from annotation_web.labeling.models import Project
from annotation_web.labeling.serializers import ImportRequestSerializer
from annotation_web.labeling.snapshots import judgment_snapshot_list
from annotation_web.loop import selectors as loop_selectors
from annotation_web.loop.evaluation import EVALUATE
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.training import api
from annotation_web.training.services import GENERATE, TRAIN_RESTORER, TRAIN_REWARD, TRAIN_RL

IMPORT = "import"


def _engineer(request: HttpRequest) -> User:
    """The logged-in engineer making the request (403 for anyone else)."""
    user = request.user
    if not isinstance(user, User) or not user.is_engineer:
        raise PermissionDenied("Starting jobs is for ML engineers.")
    return user


def _project(user, slug: str) -> Project:
    try:
        return access.project_get_for_member(user=user, slug=slug)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


# --- what a job would use -------------------------------------------------------------------------------------


def _version_choices(versions: list[ModelVersion], in_use: ModelVersion | None) -> list[tuple[str, str]]:
    return [
        (str(v.pk), f"{v} (#{v.pk}){' — in use' if in_use and v.pk == in_use.pk else ''}") for v in versions
    ]


def job_form_facts(*, project: Project) -> dict[str, Any]:
    """What the forms show and start from: the loop's state (versions in use, the candidate, the held-out
    inputs), the project's usable restorers and reward models, its inputs, and the judgments a reward job queued
    now would snapshot (with the latest snapshot for comparison)."""
    state = loop_selectors.loop_state_get(project=project)
    restorers = list(api.project_versions(project=project, kind=ModelKind.RESTORER)[:200])
    rewards = list(api.project_versions(project=project, kind=ModelKind.REWARD)[:200])
    return {
        "restorer_in_use": state.restorer,
        "reward_in_use": state.reward,
        "candidate": state.candidate,
        "held_out_ids": list(state.held_out_input_ids or []),
        "inputs": project.inputs.count(),
        "snapshot_size": labeling_selectors.preference_export_count(project=project),
        "latest_snapshot": judgment_snapshot_list(project=project).last(),
        "restorer_choices": _version_choices(restorers, state.restorer),
        "reward_choices": _version_choices(rewards, state.reward),
    }


def _pk(version: ModelVersion | None) -> str:
    return str(version.pk) if version is not None else ""


def _config_table(configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Named configs side by side: one row per setting, one column per name (nested values as JSON)."""
    names = list(configs)
    settings_seen: list[str] = []
    for values in configs.values():
        settings_seen += [key for key in values if key not in settings_seen]

    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    return {
        "names": names,
        "rows": [(key, [text(configs[name].get(key)) for name in names]) for key in settings_seen],
    }


def rl_presets_table() -> dict[str, Any]:
    return _config_table({p: ml_bridge.rl_config_validate(preset=p, overrides={}) for p in api.RL_PRESETS})


def restorer_configs_table() -> dict[str, Any]:
    return _config_table(
        {c: ml_bridge.restorer_train_config(config=c, overrides={}) for c in api.RESTORER_CONFIGS}
    )


# --- the forms ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormField:
    """One input of a job form, named as the API request's field. `widget`: number, text, select, checkbox,
    json (an object, parsed), ids (whole numbers separated by commas or spaces), file."""

    name: str
    label: str
    widget: str = "number"
    help: str = ""
    step: str = "1"
    # The select's options (value, text) from the facts, and the text of its empty option ("" = none offered).
    choices: Callable[[dict[str, Any]], list[tuple[str, str]]] | None = None
    empty_label: str = ""
    # The starting value from the facts (else the API's default).
    initial: Callable[[dict[str, Any]], Any] | None = None


@dataclass(frozen=True)
class FormKind:
    """One job form: its URL name (the API's, `training.api.JOB_REQUESTS`), the job kind it queues, its title,
    what it does, its fields, and extra context (the named configs' tables)."""

    name: str
    job_kind: str
    title: str
    summary: str
    fields: list[FormField]
    extra: Callable[[], dict[str, Any]] | None = None


def _restorers(facts: dict[str, Any]) -> list[tuple[str, str]]:
    return facts["restorer_choices"]


def _rewards(facts: dict[str, Any]) -> list[tuple[str, str]]:
    return facts["reward_choices"]


def _static(choices: list[str]) -> Callable[[dict[str, Any]], list[tuple[str, str]]]:
    return lambda facts: [(c, c) for c in choices]


FORM_KINDS: dict[str, FormKind] = {
    kind.name: kind
    for kind in (
        FormKind(
            IMPORT,
            IMPORT_KIND,
            "Import faces",
            "Upload a zip of face images or one image, or name an S3 prefix; each face is stored with its degraded "
            "copy. Bad files are reported in the job, never fatal.",
            [
                FormField(
                    "file",
                    "Zip or image",
                    "file",
                    f"A zip of PNG, JPEG or WebP faces, or one such image; up to {settings.IMPORT_MAX_UPLOAD_BYTES // 2**20} MiB.",
                ),
                FormField(
                    "s3_prefix",
                    "or an S3 prefix",
                    "text",
                    "s3://bucket/prefix — give this or a file, not both.",
                ),
                FormField("batch", "Batch", "text", "A label for these faces' pairs (optional)."),
                FormField(
                    "instruction", "Instruction", "text", "Text instruction for the restorer (optional)."
                ),
            ],
        ),
        FormKind(
            "train-restorer",
            TRAIN_RESTORER,
            "Train a restorer (supervised)",
            "Supervised training of the project's first restorer on synthetic faces (restorer.train), registered as "
            "the next version.",
            [
                FormField("config", "Named config", "select", choices=_static(api.RESTORER_CONFIGS)),
                FormField(
                    "overrides",
                    "Overrides (JSON object)",
                    "json",
                    'Top-level TrainConfig fields, e.g. {"max_steps": 200}.',
                ),
                FormField(
                    "name",
                    "Registry name",
                    "text",
                    "Letters, digits, - and _; the project's slug when empty.",
                ),
            ],
            extra=lambda: {
                "configs_table": restorer_configs_table(),
                "configs_title": "Named training configs",
            },
        ),
        FormKind(
            "generate",
            GENERATE,
            "Generate candidates and pairs",
            "K samples per input from a restorer become candidates; the pairs that teach most join the queue.",
            [
                FormField(
                    "restorer_id",
                    "Restorer",
                    "select",
                    choices=_restorers,
                    initial=lambda f: _pk(f["restorer_in_use"]),
                ),
                FormField(
                    "reward_id",
                    "Reward model (pair selection)",
                    "select",
                    choices=_rewards,
                    empty_label="none: pairs by the restorer's samples alone",
                    initial=lambda f: _pk(f["reward_in_use"]),
                ),
                FormField("input_ids", "Input ids", "ids", "All of the project's inputs when empty."),
                FormField("samples_per_input", "Samples per input", help="2–16."),
                FormField("pairs_budget", "Pairs budget", help="Twice the inputs when empty."),
                FormField("num_steps", "Denoising steps", help="1–1000."),
                FormField(
                    "eta",
                    "Stochasticity (eta)",
                    step="any",
                    help="0 deterministic … 1 fully stochastic (the loop uses 1).",
                ),
                FormField("seed", "Seed"),
                FormField("random_fraction", "Random share of pairs", step="any", help="0–1."),
                FormField(
                    "acquisition",
                    "Acquisition",
                    "text",
                    "Informative score: bald, entropy or information (the loop's).",
                ),
                FormField(
                    "max_per_input", "Max informative pairs per input", help="Optional; not with spread."
                ),
                FormField(
                    "spread",
                    "Per-input spread",
                    step="any",
                    help="Optional cap as a multiple of the even share (the loop uses 2); not with max.",
                ),
                FormField(
                    "agreement_share",
                    "Share asked of two annotators",
                    step="any",
                    help="0–1: keeps agreement measured.",
                ),
                FormField(
                    "cross_version_restorer_id",
                    "Cross-version pairs against",
                    "select",
                    choices=_restorers,
                    empty_label="none",
                ),
                FormField(
                    "cross_version_fraction", "Cross-version share", step="any", help="0–1 of the budget."
                ),
                FormField(
                    "cross_version_fill",
                    "Fill with other versions' candidates when samples are too alike",
                    "checkbox",
                ),
            ],
        ),
        FormKind(
            "train-reward",
            TRAIN_REWARD,
            "Train a reward model",
            "Trains on a judgment snapshot frozen when the job is queued (cited in the new model's lineage).",
            [
                FormField(
                    "size", "Size", "select", choices=lambda facts: [(s, s) for s in ml_bridge.reward_sizes()]
                ),
                FormField("max_steps", "Steps", help=f"1–{api.REWARD_MAX_STEPS}."),
                FormField("seed", "Seed"),
                FormField("name", "Registry name", "text", "The project's slug when empty."),
                FormField(
                    "compare_with_reward_id",
                    "Compare with",
                    "select",
                    choices=_rewards,
                    empty_label="none",
                    initial=lambda f: _pk(f["reward_in_use"]),
                    help="Scored beside the new model on the same held-out judgments.",
                ),
            ],
        ),
        FormKind(
            "train-rl",
            TRAIN_RL,
            "RL fine-tune a restorer",
            "On-policy RL of a restorer against a reward model; the result is a candidate restorer.",
            [
                FormField(
                    "restorer_id",
                    "Restorer (policy)",
                    "select",
                    choices=_restorers,
                    initial=lambda f: _pk(f["restorer_in_use"]),
                ),
                FormField(
                    "reward_id",
                    "Reward model",
                    "select",
                    choices=_rewards,
                    initial=lambda f: _pk(f["reward_in_use"]),
                ),
                FormField("preset", "Preset", "select", choices=_static(api.RL_PRESETS)),
                FormField(
                    "overrides",
                    "Overrides (JSON object)",
                    "json",
                    'RLConfig fields, e.g. {"max_steps": 10, "kl_weight": 0.05}; checked before queuing.',
                ),
                FormField(
                    "exclude_input_ids",
                    "Inputs left out",
                    "ids",
                    "The project's held-out inputs (RL never sees them).",
                    initial=lambda f: f["held_out_ids"],
                ),
            ],
            extra=lambda: {"configs_table": rl_presets_table(), "configs_title": "RL presets"},
        ),
        FormKind(
            "evaluate",
            EVALUATE,
            "Evaluate a candidate restorer",
            "A restorer against another (the one in use) on the project's held-out inputs, same inputs and seeds: "
            "PSNR, SSIM, perceptual distance, entropy, learned reward, the held-out evaluator and the win rate.",
            [
                FormField(
                    "candidate_id",
                    "Candidate",
                    "select",
                    choices=_restorers,
                    initial=lambda f: _pk(f["candidate"]),
                ),
                FormField(
                    "against_id",
                    "Against",
                    "select",
                    choices=_restorers,
                    empty_label="the restorer in use",
                    initial=lambda f: _pk(f["restorer_in_use"]),
                ),
                FormField(
                    "reward_id",
                    "Reward model (learned reward)",
                    "select",
                    choices=_rewards,
                    empty_label="the reward model in use",
                    initial=lambda f: _pk(f["reward_in_use"]),
                ),
                FormField("seeds", "Seeds per input", help=f"1–{api.EVALUATE_MAX_SEEDS}."),
                FormField("num_steps", "Denoising steps", help=f"1–{api.EVALUATE_MAX_STEPS}."),
                FormField(
                    "held_out_evaluator",
                    "Held-out evaluator",
                    "select",
                    choices=_static(list(ml_bridge.HELD_OUT_EVALUATORS)),
                    empty_label="what the loop's RL guard watches",
                ),
            ],
        ),
    )
}


def _initial_values(kind: FormKind, facts: dict[str, Any]) -> dict[str, Any]:
    """The form's starting values: from the facts where the field says so, else the API serializer's default."""
    defaults: dict[str, Any] = {}
    if kind.name != IMPORT:
        request_fields = api.JOB_REQUESTS[kind.name].request().fields
        for name, serializer_field in request_fields.items():
            default = serializer_field.default
            if default is not empty and not callable(default):
                defaults[name] = default
    values: dict[str, Any] = {}
    for form_field in kind.fields:
        value = form_field.initial(facts) if form_field.initial else defaults.get(form_field.name, "")
        values[form_field.name] = _shown(form_field, value)
    return values


def _shown(form_field: FormField, value: Any) -> Any:
    if form_field.widget == "checkbox":
        return bool(value)
    if form_field.widget == "ids":
        return ", ".join(str(v) for v in value) if isinstance(value, list) else (value or "")
    if form_field.widget == "json":
        return json.dumps(value) if isinstance(value, dict) and value else (value or "")
    return "" if value is None else str(value)


IDS_SEPARATOR = re.compile(r"[,\s]+")


def form_request_data(kind: FormKind, post, files) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The posted form as the API's request body (an empty field left out: the API's default applies), and what
    could not be read as the field's type (bad JSON, an id that is not a whole number)."""
    data: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for form_field in kind.fields:
        name = form_field.name
        if form_field.widget == "checkbox":
            data[name] = name in post
            continue
        if form_field.widget == "file":
            if files.get(name) is not None:
                data[name] = files[name]
            continue
        raw = post.get(name, "").strip()
        if not raw:
            continue
        if form_field.widget == "json":
            try:
                data[name] = json.loads(raw)
            except json.JSONDecodeError as exc:
                errors[name] = [f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"]
        elif form_field.widget == "ids":
            parts = [p for p in IDS_SEPARATOR.split(raw) if p]
            bad = [p for p in parts if not p.isdigit()]
            if bad:
                errors[name] = [f"not whole numbers: {', '.join(bad[:5])}"]
            else:
                data[name] = [int(p) for p in parts]
        else:
            data[name] = raw
    return data, errors


def _error_texts(errors: Any) -> list[str]:
    """A serializer's error detail (a list, a dict by index or key, a string) as flat messages."""
    if isinstance(errors, dict):
        return [
            f"{key}: {text}" if not isinstance(key, str) or key.isdigit() else text
            for key, value in errors.items()
            for text in _error_texts(value)
        ]
    if isinstance(errors, list):
        return [text for item in errors for text in _error_texts(item)]
    return [str(errors)]


class _JobFormThrottle(UserRateThrottle):
    """The API's `jobs` rate, counted per engineer in the same cache key as the API's job endpoints."""

    scope = "jobs"


def _validate_and_queue(
    *, kind: FormKind, user: User, project: Project, data: dict[str, Any]
) -> tuple[Any, dict[str, list[str]], list[str]]:
    """Check `data` with the API's serializer and queue the job: (job or None, field errors, other errors)."""
    body: serializers.Serializer
    if kind.name == IMPORT:
        body = ImportRequestSerializer(data=data)
    else:
        body = api.job_request_serializer(name=kind.name, project=project, data=data)
    try:
        valid = body.is_valid()
    except api.VersionNotFound as exc:
        return None, {exc.field: [exc.message.removeprefix(f"{exc.field}: ")]}, []
    if not valid:
        names = {f.name for f in kind.fields}
        field_errors = {k: _error_texts(v) for k, v in body.errors.items() if k in names}
        other = [
            f"{k}: {text}" if k != "non_field_errors" else text
            for k, v in body.errors.items()
            if k not in names
            for text in _error_texts(v)
        ]
        return None, field_errors, other
    validated = body.validated_data
    try:
        if kind.name == IMPORT:
            upload = validated.get("file")
            if upload is not None and upload.size > settings.IMPORT_MAX_UPLOAD_BYTES:
                return None, {"file": [f"upload is over {settings.IMPORT_MAX_UPLOAD_BYTES} bytes"]}, []
            job = import_job_create(
                project=project,
                user=user,
                upload_name=upload.name if upload else "",
                upload=upload,
                s3_prefix=validated.get("s3_prefix", ""),
                batch=validated["batch"],
                instruction=validated["instruction"],
            )
        else:
            job = api.job_request_queue(name=kind.name, project=project, user=user, validated=validated)
    except ServiceError as exc:
        return None, {}, [exc.message]
    return job, {}, []


@require_GET
@login_required
def job_kinds(request: HttpRequest, slug: str) -> HttpResponse:
    """The kinds of job an engineer may start on the project, with what is in use now."""
    user = _engineer(request)
    project = _project(user, slug)
    context = {
        "project": project,
        "facts": job_form_facts(project=project),
        "kinds": list(FORM_KINDS.values()),
    }
    return render(request, "training/job_kinds.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def job_form(request: HttpRequest, slug: str, kind: str) -> HttpResponse:
    """One kind's form: GET shows it with what the job would use; POST checks it as the API does and queues the
    job (then the job's page), or shows the form again with each error beside its field (status 400)."""
    user = _engineer(request)
    project = _project(user, slug)
    form_kind = FORM_KINDS.get(kind)
    if form_kind is None:
        raise Http404(f"no job kind {kind!r} to start")
    facts = job_form_facts(project=project)
    status = 200
    field_errors: dict[str, list[str]] = {}
    errors: list[str] = []
    if request.method == "POST":
        values = {
            f.name: _shown(
                f, request.POST.get(f.name, "") if f.widget != "checkbox" else f.name in request.POST
            )
            for f in form_kind.fields
        }
        throttle = _JobFormThrottle()
        # DRF's throttle reads only the user and the client address, which a Django request has too.
        if not throttle.allow_request(cast(Any, request), cast(Any, None)):
            wait = throttle.wait()
            errors = [f"Too many job requests: try again in {round(wait or 0)} s."]
            status = 429
        else:
            data, field_errors = form_request_data(form_kind, request.POST, request.FILES)
            if not field_errors:
                job, field_errors, errors = _validate_and_queue(
                    kind=form_kind, user=user, project=project, data=data
                )
                if job is not None:
                    return redirect("job-detail", pk=job.pk)
            status = 400
    else:
        values = _initial_values(form_kind, facts)
    fields = [
        {
            "spec": f,
            "id": f"id_{f.name}",
            "value": values.get(f.name, ""),
            "errors": field_errors.get(f.name, []),
            "choices": f.choices(facts) if f.choices else [],
        }
        for f in form_kind.fields
    ]
    # The focus starts on the first field to correct, else on the first field.
    focus = next((f["id"] for f in fields if f["errors"]), fields[0]["id"] if fields else "")
    context = {
        "project": project,
        "kind": form_kind,
        "facts": facts,
        "fields": fields,
        "focus": focus,
        "errors": errors,
        "invalid_fields": sum(1 for f in fields if f["errors"]),
        "has_file": any(f.widget == "file" for f in form_kind.fields),
        **(form_kind.extra() if form_kind.extra else {}),
    }
    return render(request, "training/job_form.html", context, status=status)
