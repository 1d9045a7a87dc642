"""Pages for people (the annotator's judging page) and the signed file URLs of the local storage."""

from __future__ import annotations

import mimetypes

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from annotation_web.labeling import selectors
from annotation_web.labeling.errors import NotFound
from annotation_web.storage import (
    LocalStorage,
    StorageKeyError,
    StorageMissing,
    get_storage,
    local_key_from_token,
)


@login_required
def home(request):
    projects = list(selectors.project_list())
    if len(projects) == 1:
        return redirect("annotate", slug=projects[0].slug)
    return render(request, "labeling/home.html", {"projects": projects})


@login_required
def annotate(request, slug: str):
    try:
        project = selectors.project_get(slug=slug)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    return render(request, "labeling/annotate.html", {"project": project})


@require_GET
def storage_file(request, token: str):
    storage = get_storage()
    if not isinstance(storage, LocalStorage):
        raise Http404("files are served by the object store")
    try:
        key = local_key_from_token(token, max_age=settings.STORAGE_URL_TTL_SECONDS)
        data = storage.get(key)
    except (signing.BadSignature, StorageKeyError, StorageMissing) as exc:
        raise Http404("no such file, or the link expired") from exc
    response = HttpResponse(data, content_type=mimetypes.guess_type(key)[0] or "application/octet-stream")
    response["Cache-Control"] = "private, max-age=3600"
    return response
