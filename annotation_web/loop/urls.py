"""The engineers' pages of the loop: its policy and decisions, and two restorer versions side by side."""

from django.urls import path  # noqa: F401  (the pages come in with their views)

urlpatterns: list = []
