from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from annotation_web.accounts import api as accounts_api
from annotation_web.api_errors import json_or_html
from annotation_web.jobs import api as jobs_api
from annotation_web.jobs import pages as jobs_pages
from annotation_web.labeling import api as labeling_api
from annotation_web.labeling import views as labeling_views
from annotation_web.loop import api as loop_api
from annotation_web.loop import model_pages
from annotation_web.registry import api as registry_api
from annotation_web.training import api as training_api

api = [
    path("api/auth/token/", accounts_api.TokenApi.as_view(), name="api-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its init script as a file (no inline script: the Content-Security-Policy holds)
    # and Swagger UI from the sidecar package (no CDN).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/projects/", labeling_api.ProjectListApi.as_view(), name="api-projects"),
    path("api/projects/<slug:slug>/next/", labeling_api.NextPairApi.as_view(), name="api-next-pair"),
    path("api/projects/<slug:slug>/me/stats/", labeling_api.MyStatsApi.as_view(), name="api-my-stats"),
    path("api/projects/<slug:slug>/pairs/", labeling_api.PairListApi.as_view(), name="api-pairs"),
    path("api/projects/<slug:slug>/judgments/", labeling_api.JudgmentListApi.as_view(), name="api-judgments"),
    path("api/projects/<slug:slug>/agreement/", labeling_api.AgreementApi.as_view(), name="api-agreement"),
    path("api/projects/<slug:slug>/dashboard/", labeling_api.DashboardApi.as_view(), name="api-dashboard"),
    path("api/projects/<slug:slug>/export/", labeling_api.ExportPreferencesApi.as_view(), name="api-export"),
    path("api/projects/<slug:slug>/imports/", labeling_api.ImportApi.as_view(), name="api-import"),
    path("api/judgments/", labeling_api.SubmitJudgmentApi.as_view(), name="api-submit"),
    path(
        "api/reservations/<uuid:reservation>/renew/",
        labeling_api.RenewReservationApi.as_view(),
        name="api-reservation-renew",
    ),
    path("api/jobs/", jobs_api.JobListApi.as_view(), name="api-jobs"),
    path("api/jobs/<int:pk>/", jobs_api.JobDetailApi.as_view(), name="api-job"),
    path("api/jobs/<int:pk>/cancel/", jobs_api.JobCancelApi.as_view(), name="api-job-cancel"),
    path("api/jobs/<int:pk>/retry/", jobs_api.JobRetryApi.as_view(), name="api-job-retry"),
    path("api/workers/", jobs_api.WorkerListApi.as_view(), name="api-workers"),
    path("api/models/", registry_api.ModelVersionListApi.as_view(), name="api-models"),
    path(
        "api/projects/<slug:slug>/jobs/generate/",
        training_api.GenerateJobApi.as_view(),
        name="api-job-generate",
    ),
    path(
        "api/projects/<slug:slug>/jobs/train-reward/",
        training_api.RewardJobApi.as_view(),
        name="api-job-reward",
    ),
    path("api/projects/<slug:slug>/jobs/train-rl/", training_api.RLJobApi.as_view(), name="api-job-rl"),
    path("api/projects/<slug:slug>/loop/", loop_api.LoopPolicyApi.as_view(), name="api-loop"),
    path("api/projects/<slug:slug>/loop/events/", loop_api.LoopEventsApi.as_view(), name="api-loop-events"),
    path(
        "api/projects/<slug:slug>/loop/promote/", loop_api.LoopPromoteApi.as_view(), name="api-loop-promote"
    ),
    path(
        "api/projects/<slug:slug>/loop/rollback/",
        loop_api.LoopRollbackApi.as_view(),
        name="api-loop-rollback",
    ),
    path("api/projects/<slug:slug>/leaderboard/", loop_api.LeaderboardApi.as_view(), name="api-leaderboard"),
    path("api/projects/<slug:slug>/snapshots/", loop_api.SnapshotListApi.as_view(), name="api-snapshots"),
    path(
        "api/projects/<slug:slug>/snapshots/<int:number>/export.jsonl",
        loop_api.SnapshotExportApi.as_view(),
        name="api-snapshot-export",
    ),
]

pages = [
    path("", labeling_views.home, name="home"),
    path("annotate/<slug:slug>/", labeling_views.annotate, name="annotate"),
    path(
        "files/r/<str:handle>/<str:slot>/",
        labeling_views.ReservationImageView.as_view(),
        name="reservation-image",
    ),
    path("files/<str:token>/", labeling_views.storage_file, name="storage-file"),
    path("login/", accounts_api.ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("jobs/", jobs_pages.job_list, name="jobs"),
    path("jobs/<int:pk>/", jobs_pages.job_detail, name="job-detail"),
    path("models/", model_pages.model_list, name="models"),
    path("models/<int:pk>/", model_pages.model_detail, name="model-detail"),
    path("", include("annotation_web.dashboards.urls")),
    path("", include("annotation_web.training.urls")),
    path("", include("annotation_web.loop.urls")),
    path("", include("annotation_web.registry.urls")),
]

urlpatterns = api + pages

# Under /api/ even the answers Django gives itself (no view matched, a bad request, a crash) are JSON.
handler400 = json_or_html(400, "bad_request", "Bad request.", defaults.bad_request)
handler404 = json_or_html(404, "not_found", "Not found.", defaults.page_not_found)
handler500 = json_or_html(500, "server_error", "Server error.", defaults.server_error)
