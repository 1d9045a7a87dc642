from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from annotation_web.jobs import api as jobs_api
from annotation_web.labeling import api as labeling_api
from annotation_web.labeling import views as labeling_views
from annotation_web.registry import api as registry_api
from annotation_web.training import api as training_api

api = [
    path("api/auth/token/", obtain_auth_token, name="api-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
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
    path("api/jobs/", jobs_api.JobListApi.as_view(), name="api-jobs"),
    path("api/jobs/<int:pk>/", jobs_api.JobDetailApi.as_view(), name="api-job"),
    path("api/jobs/<int:pk>/cancel/", jobs_api.JobCancelApi.as_view(), name="api-job-cancel"),
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
]

pages = [
    path("", labeling_views.home, name="home"),
    path("annotate/<slug:slug>/", labeling_views.annotate, name="annotate"),
    path("dashboard/<slug:slug>/", labeling_views.dashboard, name="dashboard"),
    path("files/<str:token>/", labeling_views.storage_file, name="storage-file"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]

urlpatterns = api + pages
