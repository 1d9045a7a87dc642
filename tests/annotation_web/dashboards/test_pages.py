"""The dashboard pages and their downloads: who may read them, that each CSV and JSON download holds exactly the
rows the page plots, that a bad filter is refused, and that the queries a page makes do not grow with the
number of judgments."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import user_create
from annotation_web.dashboards.plots import PAGES, PLOT_PAGES
from tests.annotation_web.dashboards.conftest import plant

pytestmark = pytest.mark.django_db

PAGE_PATHS = {"dataset": "", "people": "people/", "models": "models/", "jobs": "jobs/"}
DATA_BLOCK = re.compile(r'<script id="plot-data-([\w-]+)" type="application/json">(.*?)</script>', re.S)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _judged_project(make_project, make_user, ordinary_pairs, gold_pairs_of, *, judgments: int):
    """A project with 4 annotators, 60 ordinary pairs and 4 gold pairs, `judgments` of them judged (gold
    included), spread over the annotators, outcomes and screen sides."""
    project = make_project(pairs=60, gold=4)
    annotators = [make_user(Role.ANNOTATOR, f"{project.slug}-ann{i}") for i in range(4)]
    targets = [
        (pair, annotator)
        for pair in gold_pairs_of(project) + ordinary_pairs(project)
        for annotator in annotators
    ]
    outcomes = ["a", "b", "tie", "both_bad", "skip", "a", "b"]
    for index, (pair, annotator) in enumerate(targets[:judgments]):
        plant(
            pair=pair,
            annotator=annotator,
            outcome=outcomes[index % len(outcomes)],
            shown_left="ab"[index % 2],
            duration_ms=800 + 37 * index,
        )
    return project


def test_annotators_are_refused_every_page_and_download_and_outsiders_see_nothing(make_project, make_user):
    project = make_project(pairs=2)
    annotator, manager, engineer = (
        make_user(Role.ANNOTATOR),
        make_user(Role.MANAGER),
        make_user(Role.ENGINEER),
    )
    outsider = user_create(username="outside-mgr", password="pw-123456", role=Role.MANAGER)
    pages = [f"/dashboard/{project.slug}/{path}" for path in PAGE_PATHS.values()]
    downloads = [
        f"/dashboard/{project.slug}/data/{plot}.{fmt}" for plot in PLOT_PAGES for fmt in ("csv", "json")
    ]
    for url in pages + downloads:
        assert _client(annotator).get(url).status_code == 403, url
        assert _client(outsider).get(url).status_code == 404, url
    for url in pages + downloads[:4]:
        assert _client(manager).get(url).status_code == 200, url
        assert _client(engineer).get(url).status_code == 200, url
    assert Client().get(pages[0]).status_code == 302  # to the login page
    assert _client(manager).get(f"/dashboard/{project.slug}/data/no-such-plot.csv").status_code == 404


def test_every_download_holds_exactly_the_plotted_rows(
    make_project, make_user, ordinary_pairs, gold_pairs_of
):
    project = _judged_project(make_project, make_user, ordinary_pairs, gold_pairs_of, judgments=40)
    manager = make_user(Role.MANAGER)
    client = _client(manager)
    seen = set()
    for page_name, path in PAGE_PATHS.items():
        query = "?batch=b1"
        html = client.get(f"/dashboard/{project.slug}/{path}{query}").content.decode()
        blocks = {name: json.loads(body) for name, body in DATA_BLOCK.findall(html)}
        canvases = set(re.findall(r'<canvas id="plot-([\w-]+)" data-plot="\1"', html))
        assert canvases and canvases == set(blocks), page_name
        for name in [plot for plot, page in PLOT_PAGES.items() if page == page_name]:
            spec = client.get(f"/dashboard/{project.slug}/data/{name}.json{query}").json()
            if name in blocks:
                assert spec == blocks[name], name
            assert spec["title"] and spec["x_label"] and (spec["y_label"] or spec["chart"] == "table"), name
            response = client.get(f"/dashboard/{project.slug}/data/{name}.csv{query}")
            assert response["Content-Type"].startswith("text/csv")
            rows = list(csv.reader(io.StringIO(response.content.decode())))
            keys = [column["key"] for column in spec["columns"]]
            assert rows[0] == keys, name
            expected = [["" if row[key] is None else str(row[key]) for key in keys] for row in spec["rows"]]
            assert rows[1:] == expected, name
            seen.add(name)
    assert seen == set(PLOT_PAGES)
    dataset_spec = client.get(f"/dashboard/{project.slug}/data/outcomes.json?batch=b1").json()
    assert sum(row["gold"] for row in dataset_spec["rows"]) == 0  # gold pairs belong to no batch
    everything = client.get(f"/dashboard/{project.slug}/data/outcomes.json").json()
    assert sum(row["ordinary"] + row["gold"] for row in everything["rows"]) == 40
    assert sum(row["gold"] for row in everything["rows"]) == 16  # 4 gold pairs x 4 annotators came first


def test_a_bad_filter_is_refused_with_its_reason(make_project, make_user):
    project = make_project(pairs=1)
    client = _client(make_user(Role.MANAGER))
    page = client.get(f"/dashboard/{project.slug}/?date_from=2026-05-02&date_to=2026-05-01")
    assert page.status_code == 400 and "ends before it starts" in page.content.decode()
    assert client.get(f"/dashboard/{project.slug}/data/outcomes.csv?date_from=yesterday").status_code == 400
    assert client.get(f"/dashboard/{project.slug}/people/?batch=nope").status_code == 400


def _queries_per_page(client, slug) -> dict[str, int]:
    counts = {}
    for page_name, path in PAGE_PATHS.items():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/dashboard/{slug}/{path}").status_code == 200
        counts[page_name] = len(queries)
    return counts


def test_queries_per_page_do_not_grow_with_the_judgments(
    make_project, make_user, ordinary_pairs, gold_pairs_of
):
    small = _judged_project(make_project, make_user, ordinary_pairs, gold_pairs_of, judgments=10)
    large = _judged_project(make_project, make_user, ordinary_pairs, gold_pairs_of, judgments=200)
    client = _client(make_user(Role.MANAGER))
    small_counts, large_counts = _queries_per_page(client, small.slug), _queries_per_page(client, large.slug)
    assert set(small_counts) == set(PAGES)
    assert large_counts == small_counts
    assert max(large_counts.values()) < 40


def test_a_download_computes_its_own_plot_only(make_project, make_user, ordinary_pairs, gold_pairs_of):
    project = _judged_project(make_project, make_user, ordinary_pairs, gold_pairs_of, judgments=40)
    client = _client(make_user(Role.MANAGER))
    page_queries = _queries_per_page(client, project.slug)
    for plot, page_name in PLOT_PAGES.items():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/dashboard/{project.slug}/data/{plot}.csv").status_code == 200
        assert len(queries) <= page_queries[page_name], plot
    # A plot of one selector reads only that selector's rows, not its page's other figures'.
    for plot in ("judgments-per-day", "outcomes", "annotator-per-day", "alpha-over-time"):
        with CaptureQueriesContext(connection) as queries:
            client.get(f"/dashboard/{project.slug}/data/{plot}.csv")
        assert len(queries) < page_queries[PLOT_PAGES[plot]] - 2, plot
