"""The managers' dashboards (dataset, people, models, jobs) and the CSV / JSON behind each plot."""

from django.urls import path

from annotation_web.dashboards import pages

urlpatterns = [
    path("dashboard/<slug:slug>/", pages.dataset, name="dashboard"),
    path("dashboard/<slug:slug>/people/", pages.people, name="dashboard-people"),
    path("dashboard/<slug:slug>/models/", pages.models, name="dashboard-models"),
    path("dashboard/<slug:slug>/jobs/", pages.jobs, name="dashboard-jobs"),
    path("dashboard/<slug:slug>/data/<slug:plot>.csv", pages.plot_data, {"fmt": "csv"}, name="dashboard-csv"),
    path(
        "dashboard/<slug:slug>/data/<slug:plot>.json", pages.plot_data, {"fmt": "json"}, name="dashboard-json"
    ),
]
