"""Pages for people (the annotator's judging page), the images of a reservation, and the signed file URLs of
the local storage."""

from __future__ import annotations

import mimetypes

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET
from rest_framework.views import APIView

from annotation_web.labeling import access, selectors
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
    projects = list(access.projects_visible(user=request.user))
    can_read_dashboards = request.user.is_manager or request.user.is_engineer
    if len(projects) == 1 and not can_read_dashboards:
        return redirect("annotate", slug=projects[0].slug)
    return render(
        request, "labeling/home.html", {"projects": projects, "can_read_dashboards": can_read_dashboards}
    )


@login_required
def annotate(request, slug: str):
    try:
        project = access.project_get_for_member(user=request.user, slug=slug)
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
        # A token signed over something that is not a file's key (not a string, a NUL, a folder) is a 404 too.
        if not isinstance(key, str) or "\x00" in key:
            raise StorageKeyError("not a storage key")
        data = storage.get(key)
    except (signing.BadSignature, StorageKeyError, StorageMissing, OSError, ValueError) as exc:
        raise Http404("no such file, or the link expired") from exc
    response = HttpResponse(data, content_type=mimetypes.guess_type(key)[0] or "application/octet-stream")
    response["Cache-Control"] = "private, max-age=3600"
    return response


class ReservationImageView(APIView):
    """One image of a served pair, by reservation handle and slot (`/files/r/<handle>/left|right|lq/`).

    Streamed from the storage whatever its backend, never redirected: a presigned S3 URL would show the key.
    Authenticated like the API (session for the page, token for tools); only the reservation's annotator
    gets it, while it is live or just ended (`selectors.reservation_image_key`)."""

    schema = None  # an image, not part of the JSON API's schema

    def get(self, request, handle: str, slot: str):
        key = selectors.reservation_image_key(annotator=request.user, handle=handle, slot=slot)
        try:
            data = get_storage().get(key)
        except (StorageKeyError, StorageMissing) as exc:
            raise Http404("no such image, or the link expired") from exc
        # The content type of every served image is the same: the page never learns a file's real name.
        response = HttpResponse(data, content_type="image/png")
        response["Cache-Control"] = "private, max-age=600"
        response["X-Content-Type-Options"] = "nosniff"
        return response
