"""The engineers' pages that start jobs (one form per kind), and the API routes of the job kinds started from
`training.api` that `annotation_web.urls` does not list (supervised restorer training, evaluation)."""

from django.urls import path

from annotation_web.training import api, pages

urlpatterns = [
    path("projects/<slug:slug>/jobs/new/", pages.job_kinds, name="job-new"),
    path("projects/<slug:slug>/jobs/new/<str:kind>/", pages.job_form, name="job-new-kind"),
    path(
        "api/projects/<slug:slug>/jobs/train-restorer/",
        api.RestorerTrainingJobApi.as_view(),
        name="api-job-restorer",
    ),
    path("api/projects/<slug:slug>/jobs/evaluate/", api.EvaluateJobApi.as_view(), name="api-job-evaluate"),
]
