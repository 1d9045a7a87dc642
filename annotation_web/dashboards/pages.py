"""The managers' dashboards: one page per subject (dataset, people, models, jobs) under `/dashboard/<slug>/`,
and the data behind each plot as CSV and JSON (`/dashboard/<slug>/data/<plot>.csv|json`), with the page's
filters. Managers and ML engineers of the project only: an annotator is refused (403), a project the user is
not a member of does not exist for them (404). The figures come from `plots` (built from the selectors); the
views only check, parse the filter and render.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation_web.dashboards.forms import DashboardFilterForm
from annotation_web.dashboards.plots import PAGES, PLOTS, Page, plot_build
from annotation_web.dashboards.selectors.filters import NO_FILTERS, DashboardFilters
from annotation_web.errors import NotFound
from annotation_web.labeling import access
from annotation_web.labeling.models import Project


def _project_for_reader(request, slug: str) -> Project:
    if not (request.user.is_manager or request.user.is_engineer):
        raise PermissionDenied("Dashboards are for managers and ML engineers.")
    try:
        return access.project_get_for_member(user=request.user, slug=slug)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


def _filters(request, project: Project) -> tuple[DashboardFilterForm, DashboardFilters | None]:
    """The filter form and its filter (None when the query string does not validate)."""
    form = DashboardFilterForm(request.GET or None, project=project)
    if form.is_bound and not form.is_valid():
        return form, None
    return form, form.filters() if form.is_bound else NO_FILTERS


def _build(
    request, project: Project, page_name: str
) -> tuple[DashboardFilterForm, DashboardFilters, Page | None]:
    """The filter form, the filter, and the page's figures (None when the filter does not validate)."""
    form, filters = _filters(request, project)
    if filters is None:
        return form, NO_FILTERS, None
    _, builder = PAGES[page_name]
    return form, filters, builder(project=project, filters=filters, user=request.user)


def _page(request, slug: str, page_name: str):
    project = _project_for_reader(request, slug)
    form, filters, page = _build(request, project, page_name)
    context = {
        "project": project,
        "form": form,
        "page": page,
        "page_name": page_name,
        "tabs": [(name, title) for name, (title, _) in PAGES.items()],
        "plots": page.plots if page else [],
        "query": request.GET.urlencode(),
        "filters_text": filters.describe(),
    }
    return render(request, f"dashboards/{page_name}.html", context, status=200 if page else 400)


@require_GET
@login_required
def dataset(request, slug: str):
    return _page(request, slug, "dataset")


@require_GET
@login_required
def people(request, slug: str):
    return _page(request, slug, "people")


@require_GET
@login_required
def models(request, slug: str):
    return _page(request, slug, "models")


@require_GET
@login_required
def jobs(request, slug: str):
    return _page(request, slug, "jobs")


@require_GET
@login_required
def plot_data(request, slug: str, plot: str, fmt: str):
    """The rows of one plot, as plotted, with the same filter as the page's query string (only that plot's
    figures are computed, not its page's others)."""
    project = _project_for_reader(request, slug)
    if plot not in PLOTS:
        raise Http404(f"no plot {plot!r}")
    form, filters = _filters(request, project)
    if filters is None:
        return HttpResponseBadRequest(f"bad filter: {form.errors.as_text()}", content_type="text/plain")
    figure = plot_build(name=plot, project=project, filters=filters, user=request.user)
    if fmt == "json":
        return JsonResponse(figure.spec())
    response = HttpResponse(figure.csv(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-{plot}.csv"'
    return response
