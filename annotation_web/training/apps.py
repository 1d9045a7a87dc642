from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "annotation_web.training"
    label = "training"
