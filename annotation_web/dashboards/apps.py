from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "annotation_web.dashboards"
    label = "dashboards"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from annotation_web.dashboards.selectors.aggregates import register_sqlite_median

        # SQLite has no median of its own: each connection gets one (PostgreSQL's percentile_cont is built in).
        connection_created.connect(register_sqlite_median, dispatch_uid="dashboards-sqlite-median")
