from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "annotation_web.accounts"
    label = "accounts"

    def ready(self) -> None:
        from annotation_web.accounts import schema, signals  # noqa: F401  (token revocation, schema name)
