"""The managers' dashboards (dataset, people, models, jobs) and the CSV behind each plot."""

from django.urls import path

from annotation_web.labeling import views as labeling_views

urlpatterns = [
    path("dashboard/<slug:slug>/", labeling_views.dashboard, name="dashboard"),
]
