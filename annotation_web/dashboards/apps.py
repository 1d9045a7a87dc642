from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "annotation_web.dashboards"
    label = "dashboards"
