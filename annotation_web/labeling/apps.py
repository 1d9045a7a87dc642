from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "annotation_web.labeling"
    label = "labeling"
