from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "annotation_web.labeling"
    label = "labeling"

    def ready(self) -> None:
        # The job kinds labeling owns (jobs.kinds: the one place a kind is declared).
        from annotation_web.jobs.kinds import register
        from annotation_web.labeling import import_jobs

        register(
            import_jobs.KIND,
            runner=import_jobs.import_job_run,
            label="Import faces",
            soft_time_limit=6 * 3600.0,
            time_limit=7 * 3600.0,
        )
