from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "annotation_web.jobs"
    label = "jobs"
