"""The engineers' pages that start jobs (one form per kind)."""

from django.urls import path  # noqa: F401  (the pages come in with their views)

urlpatterns: list = []
