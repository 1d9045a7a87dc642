from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "annotation_web.registry"
    label = "registry"
    verbose_name = "Model registry"
