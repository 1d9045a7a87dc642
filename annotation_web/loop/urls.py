"""The engineers' pages of the loop: its policy and decisions, and two restorer versions side by side."""

from django.urls import path

from annotation_web.loop import pages

urlpatterns = [
    path("projects/<slug:slug>/compare/", pages.compare, name="loop-compare"),
    path("projects/<slug:slug>/compare/promote/", pages.compare_promote, name="loop-compare-promote"),
    path("projects/<slug:slug>/loop/", pages.loop_page, name="loop-page"),
    path("projects/<slug:slug>/loop/rollback/", pages.loop_rollback, name="loop-rollback"),
]
