from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "annotation_web.accounts"
    label = "accounts"
