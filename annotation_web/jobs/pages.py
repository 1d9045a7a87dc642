"""The engineers' pages of jobs: the list (filtered by project, state and kind, paginated) and one job's page,
kept live by `jobs/job.js` polling the JSON API (`/api/jobs/<id>/`) and posting its cancel and retry.

Who reads what is `selectors.job_list_visible`, the rule of the API too: a job of another project answers 404.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from annotation_web.errors import NotFound
from annotation_web.jobs import selectors
from annotation_web.jobs.models import TERMINAL_STATES, JobState

JOBS_PER_PAGE = 25
MODEL_ID_KEYS = selectors.MODEL_ID_KEYS


def _require_engineer(user) -> None:
    if not user.is_engineer:
        raise PermissionDenied("The jobs pages are for ML engineers.")


def _fields(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A job's params or outputs as rows: key, the value as text, and the registry page of a model id."""
    rows = []
    for key, value in (data or {}).items():
        link = None
        if key in MODEL_ID_KEYS and isinstance(value, int) and not isinstance(value, bool):
            link = reverse("model-detail", args=[value])
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        rows.append({"key": key, "text": text, "link": link})
    return rows


@require_GET
@login_required
def job_list(request):
    _require_engineer(request.user)
    filters = {name: request.GET.get(name, "").strip() for name in ("project", "state", "kind")}
    jobs = selectors.job_list_filtered(user=request.user, **filters)
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filters": filters,
        "options": selectors.job_filter_options(user=request.user),
        "filter_query": urlencode({k: v for k, v in filters.items() if v}),
    }
    return render(request, "jobs/list.html", context)


@require_GET
@login_required
def job_detail(request, pk: int):
    _require_engineer(request.user)
    try:
        job = selectors.job_get_visible(user=request.user, pk=pk)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    progress_percent = round(100 * job.progress_done / job.progress_total) if job.progress_total else None
    context = {
        "job": job,
        "terminal": job.state in TERMINAL_STATES,
        "terminal_states": ",".join(TERMINAL_STATES),
        "failed": job.state == JobState.FAILED,
        "progress_percent": progress_percent,
        "max_attempts": selectors.job_max_attempts(job=job),
        "waiting_for": selectors.job_waiting_for(job),
        "queue_has_live_worker": selectors.job_queue_has_live_worker(job=job),
        "params": _fields(job.params),
        "outputs": _fields(job.outputs),
        # What the script compares the API's answers with (it rebuilds a table only when it changed).
        "params_json": json.dumps(job.params),
        "outputs_json": json.dumps(job.outputs),
        "model_id_keys": ",".join(MODEL_ID_KEYS),
    }
    return render(request, "jobs/detail.html", context)
