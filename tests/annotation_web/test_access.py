"""Access fails closed: no debug or dev secret key unless asked for, a clean `check --deploy` with the
production environment of the README, a Content-Security-Policy, password validators, the demo users only in
the demo, and per-project membership for every role."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from annotation_web.accounts.models import Role
from annotation_web.accounts.services import membership_remove, token_for_user, user_create
from annotation_web.jobs.models import Job
from annotation_web.jobs.services import job_create

REPO = Path(__file__).resolve().parents[2]
# The production environment the README documents ("Production"), with a fresh key.
PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
    "DJANGO_ALLOWED_HOSTS": "pref.example.org",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://pref.example.org",
    "DJANGO_HTTPS": "1",
    "DJANGO_HSTS_PRELOAD": "1",
    "DJANGO_PROXY_SSL_HEADER": "1",
    "DJANGO_NUM_PROXIES": "1",
}


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    clean.update(PREF_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="annotation_web.settings", **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=clean, capture_output=True, text=True, timeout=300
    )


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path):
    run = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV, tmp_path=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no issues" in run.stdout
    readme = (REPO / "README.md").read_text()
    for name in PRODUCTION_ENV:
        assert name in readme, f"README's production section does not list {name}"


@pytest.mark.parametrize(
    "key",
    [None, "", "embedded-default-secret-key-for-local-use-only", "short-key", "django-insecure-" + "x1" * 30],
)
def test_without_debug_the_app_refuses_to_start_without_a_real_secret_key(tmp_path, key):
    env = {} if key is None else {"DJANGO_SECRET_KEY": key}
    run = manage("check", env=env, tmp_path=tmp_path)
    assert run.returncode != 0 and "DJANGO_SECRET_KEY" in run.stderr


def test_debug_is_off_unless_asked_for(tmp_path):
    show = "from django.conf import settings; print('DEBUG', settings.DEBUG)"
    off = manage("shell", "-c", show, env={"DJANGO_SECRET_KEY": secrets.token_urlsafe(60)}, tmp_path=tmp_path)
    assert off.returncode == 0 and "DEBUG False" in off.stdout, off.stderr
    on = manage("shell", "-c", show, env={"DJANGO_DEBUG": "1"}, tmp_path=tmp_path)  # the demo's way
    assert on.returncode == 0 and "DEBUG True" in on.stdout, on.stderr


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy(annotator):
    client = Client()
    login = client.get("/login/")
    policy = login["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src" not in policy  # scripts: 'self' only
    assert "frame-ancestors 'none'" in policy
    client.force_login(annotator)
    assert "default-src 'self'" in client.get("/").get("Content-Security-Policy", "")


@pytest.mark.django_db
def test_passwords_are_validated():
    for weak in ["short", "12345678901", "password123", "annotatorbob"]:
        with pytest.raises(ValidationError):
            user_create(username="annotatorbob", password=weak)


@pytest.mark.django_db
def test_demo_setup_refuses_outside_the_demo_configuration(settings):
    settings.DEMO = False
    with pytest.raises(CommandError, match="demo configuration"):
        call_command("demo_setup", faces=1)


@pytest.mark.django_db
def test_api_docs_and_schema_need_a_login(annotator):
    anonymous = APIClient()
    assert anonymous.get("/api/schema/").status_code == 401
    assert anonymous.get("/api/docs/").status_code in (401, 403)
    client = Client()
    client.force_login(annotator)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower() and b"<script>" not in docs.content  # no CDN, no inline script


# --- per-project membership -------------------------------------------------------------------------------


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for_user(user=user)}")
    return client


@pytest.mark.django_db
def test_annotators_see_and_judge_only_their_projects(make_project, annotator):
    mine = make_project(pairs=2)
    outsider_project = make_project(pairs=2)
    membership_remove(user=annotator, project=outsider_project)
    client = token_client(annotator)
    assert [p["slug"] for p in client.get("/api/projects/").json()["results"]] == [mine.slug]
    assert client.post(f"/api/projects/{outsider_project.slug}/next/", {}, format="json").status_code == 404
    assert client.get(f"/api/projects/{outsider_project.slug}/me/stats/").status_code == 404
    served = client.post(f"/api/projects/{mine.slug}/next/", {}, format="json").json()["pair"]
    # removed from the project while a pair is on screen: the judgment is refused
    membership_remove(user=annotator, project=mine)
    submit = client.post(
        "/api/judgments/",
        {"reservation": served["reservation"], "choice": "left", "idempotency_key": "m1"},
        format="json",
    )
    assert submit.status_code == 404
    page = Client()
    page.force_login(annotator)
    assert page.get(f"/annotate/{outsider_project.slug}/").status_code == 404


@pytest.mark.django_db
def test_engineers_and_managers_act_only_on_their_projects(make_project):
    project = make_project(pairs=2)
    engineer = user_create(username="other-eng", password="pw-123456", role=Role.ENGINEER)
    manager = user_create(username="other-mgr", password="pw-123456", role=Role.MANAGER)
    eng, mgr = token_client(engineer), token_client(manager)
    for path in ["pairs", "judgments", "export", "agreement", "dashboard"]:
        assert eng.get(f"/api/projects/{project.slug}/{path}/").status_code == 404, path
    assert mgr.get(f"/api/projects/{project.slug}/dashboard/").status_code == 404
    assert eng.post(f"/api/projects/{project.slug}/jobs/train-reward/", {}, format="json").status_code == 404
    assert eng.post(f"/api/projects/{project.slug}/imports/", {"s3_prefix": "s3://b/p"}).status_code == 404
    page = Client()
    page.force_login(manager)
    assert page.get(f"/dashboard/{project.slug}/").status_code == 404


@pytest.mark.django_db
def test_job_list_detail_and_cancel_check_the_jobs_project(make_project, engineer):
    mine = make_project(pairs=1)
    theirs = make_project(pairs=1)
    membership_remove(user=engineer, project=theirs)
    kind = "import"
    own = job_create(kind=kind, params={}, project=mine, user=engineer)
    other = job_create(kind=kind, params={}, project=theirs)
    client = token_client(engineer)
    assert [j["id"] for j in client.get("/api/jobs/").json()["results"]] == [own.pk]
    assert client.get(f"/api/jobs/{other.pk}/").status_code == 404
    assert client.post(f"/api/jobs/{other.pk}/cancel/").status_code == 404
    assert Job.objects.get(pk=other.pk).state == "queued"
    assert client.get(f"/api/jobs/{own.pk}/").status_code == 200


# --- the Content-Security-Policy in a real browser: the admin and the API docs still work -------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_admin_and_api_docs_work_under_the_content_security_policy(live_server):
    import shutil

    from tests.annotation_web.test_browser import CHROMIUM, CHROMIUM_ARGS

    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    from annotation_web.accounts.models import User

    User.objects.create_superuser(username="root", password="root-password-42", email="")
    violations: list[str] = []
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
            )
            page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "root")
            page.fill("#id_password", "root-password-42")
            page.keyboard.press("Enter")
            page.wait_for_url(f"{live_server.url}/admin/")
            page.goto(f"{live_server.url}/admin/accounts/user/add/")
            page.wait_for_selector("#id_username")
            page.goto(f"{live_server.url}/api/docs/")
            page.wait_for_selector(".swagger-ui .info", timeout=15_000)  # Swagger UI rendered the schema
        finally:
            browser.close()
    assert not violations, violations
