"""The loop's page (`/projects/<slug>/loop/`): the current round and its jobs, the versions in use with who
changed them and why, the decisions newest first and paginated, and the policy form, validated by the API's own
serializer (a valid change is saved with who; an invalid one is shown again with why and nothing is saved);
engineers edit, managers read, annotators are refused."""

from __future__ import annotations

import re
from html import unescape

import pytest

from annotation_web.accounts.models import Role
from annotation_web.jobs.models import Job, JobState
from annotation_web.labeling.pairs import project_create
from annotation_web.loop import pages, services
from annotation_web.loop.models import LoopEvent, LoopPolicy, LoopState, VersionChange
from tests.annotation_web.loop.test_compare_page import login, page_text, plant_comparison

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(make_project):
    return make_project(pairs=0, slug="looped")


def form_of(response) -> dict[str, str]:
    """What the browser would send for the page's policy form as it stands (checked boxes only)."""
    html = re.search(r'<form [^>]*id="policy-form".*?</form>', response.content.decode(), re.S).group(0)
    data = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    for name, value in re.findall(
        r'<input type="(?:number|text)" id="[^"]+" name="([^"]+)" value="([^"]*)"', html
    ):
        data[name] = value
    for name in re.findall(r'<input type="checkbox" id="[^"]+" name="([^"]+)" checked', html):
        data[name] = "on"
    for name, value in re.findall(r'<textarea id="[^"]+" name="([^"]+)"[^>]*>([^<]*)</textarea>', html):
        data[name] = value
    return {name: unescape(value) for name, value in data.items()}


def test_every_policy_field_is_on_the_form():
    placed = [name for _, fields in pages.POLICY_SECTIONS for name, _ in fields]
    assert sorted(placed) == sorted(services.POLICY_FIELDS)  # none left to "Other settings"


def test_the_page_shows_the_round_its_jobs_the_versions_in_use_and_the_decisions_newest_first(
    client, project, engineer
):
    planted = plant_comparison(project, judged=False)
    state = LoopState.objects.get(project=project)
    state.round = 3
    state.save()
    earlier = Job.objects.create(kind="train_reward", project=project, state=JobState.SUCCEEDED)
    running = Job.objects.create(kind="train_rl", project=project, state=JobState.RUNNING)
    old_round = Job.objects.create(kind="generate", project=project, state=JobState.SUCCEEDED)
    LoopEvent.objects.create(project=project, round=2, decision="started", reason="old round", job=old_round)
    for index in range(pages.EVENTS_PER_PAGE + 4):
        LoopEvent.objects.create(project=project, round=3, decision="skipped", reason=f"decision {index}")
    LoopEvent.objects.create(project=project, round=3, decision="started", reason="reward", job=earlier)
    LoopEvent.objects.create(project=project, round=3, decision="started", reason="rl", job=running)
    LoopState.objects.filter(project=project).update(job=running)

    login(client, engineer)
    response = client.get(f"/projects/{project.slug}/loop/")
    assert response.status_code == 200
    html, text = response.content.decode(), page_text(response)
    assert "Round 3" in text
    round_jobs = re.search(r'<ul id="round-jobs">(.*?)</ul>', html, re.S).group(1)
    assert re.findall(r'href="/jobs/(\d+)/"', round_jobs) == [str(earlier.pk), str(running.pk)]
    assert "the loop's job now" in round_jobs
    old, new = planted["old"], planted["new"]
    assert f'href="/models/{old.pk}/"' in re.search(r'id="restorer-in-use">(.*?)</dd>', html).group(1)
    assert f'href="/projects/{project.slug}/compare/?a={old.pk}&amp;b={new.pk}"' in html
    assert "the first restorer" in re.search(r'<table id="changes">.*?</table>', html, re.S).group(0)
    # Decisions newest first, paginated.
    shown = [int(pk) for pk in re.findall(r'<tr data-event="(\d+)">', html)]
    newest = list(LoopEvent.objects.filter(project=project).order_by("-pk").values_list("pk", flat=True))
    assert shown == newest[: pages.EVENTS_PER_PAGE]
    second = client.get(f"/projects/{project.slug}/loop/?page=2").content.decode()
    assert [int(pk) for pk in re.findall(r'<tr data-event="(\d+)">', second)] == newest[
        pages.EVENTS_PER_PAGE :
    ]
    assert f'href="/jobs/{old_round.pk}/"' in second  # the old round's job, linked from its decision


def test_the_policy_form_saves_a_valid_change_with_who(client, project, engineer):
    login(client, engineer)
    url = f"/projects/{project.slug}/loop/"
    data = form_of(client.get(url))
    assert "enabled" not in data  # never saved: the defaults, loop off
    data.update({"enabled": "on", "pairs_budget": "77", "eta": "0.5", "rl_overrides": '{"max_steps": 3}'})
    response = client.post(url, data)
    assert response.status_code == 302 and response["Location"] == f"{url}?saved=1"
    policy = LoopPolicy.objects.get(project=project)
    assert policy.enabled and policy.pairs_budget == 77 and policy.eta == 0.5
    assert policy.rl_overrides == {"max_steps": 3} and policy.updated_by == engineer
    assert policy.samples_per_input == 4  # untouched fields keep their values
    saved = client.get(response["Location"])
    assert "Policy saved by eng" in page_text(saved)

    # Unchecking a box turns it off (the form carries every field).
    data = form_of(saved)
    data.pop("enabled")
    assert client.post(url, data).status_code == 302
    assert not LoopPolicy.objects.get(project=project).enabled


def test_an_optional_limit_is_set_and_emptied_from_the_form(client, project, engineer):
    login(client, engineer)
    url = f"/projects/{project.slug}/loop/"
    data = form_of(client.get(url))
    assert data["baseline_psnr_drop_limit_db"] == ""  # unset: an empty input, not "None"
    data["baseline_psnr_drop_limit_db"] = "0.4"
    assert client.post(url, data).status_code == 302
    assert LoopPolicy.objects.get(project=project).baseline_psnr_drop_limit_db == 0.4
    data = form_of(client.get(url))
    assert data["baseline_psnr_drop_limit_db"] == "0.4"
    data["baseline_psnr_drop_limit_db"] = ""
    assert client.post(url, data).status_code == 302
    assert LoopPolicy.objects.get(project=project).baseline_psnr_drop_limit_db is None
    data = form_of(client.get(url))
    data["baseline_psnr_drop_limit_db"] = "-1"
    response = client.post(url, data)
    assert (
        response.status_code == 400
        and LoopPolicy.objects.get(project=project).baseline_psnr_drop_limit_db is None
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("eta", "2.5", "Ensure this value is less than or equal to 1.0."),
        ("pairs_budget", "", "A value is required."),
        ("pairs_budget", "many", "A valid integer is required."),
        ("rl_overrides", "[1]", "A JSON object is required"),
        ("rl_overrides", "{not json", "Not valid JSON."),
        ("rl_overrides", '{"no_such_setting": 1}', "no_such_setting"),
        ("reward_size", "galactic", "not a reward-model size: 'galactic'"),
    ],
)
def test_an_invalid_policy_is_shown_again_with_why_and_nothing_is_saved(
    client, project, engineer, field, value, message
):
    services.loop_policy_update(project=project, user=None, changes={"pairs_budget": 40, "eta": 1.0})
    before = LoopPolicy.objects.values().get(project=project)
    login(client, engineer)
    url = f"/projects/{project.slug}/loop/"
    data = form_of(client.get(url))
    data.update({"samples_per_input": "5", field: value})
    response = client.post(url, data)
    assert response.status_code == 400
    html = response.content.decode()
    error = re.search(rf'<tr data-field="{field}">.*?</tr>', html, re.S).group(0)
    assert message in unescape(error) and 'aria-invalid="true"' in error
    assert "Not saved" in page_text(response)
    assert 'value="5"' in re.search(r'<tr data-field="samples_per_input">.*?</tr>', html, re.S).group(0)
    assert LoopPolicy.objects.values().get(project=project) == before  # nothing saved


def test_a_form_opened_before_someone_elses_change_is_refused_and_keeps_what_was_typed(
    client, project, engineer, make_user
):
    login(client, engineer)
    url = f"/projects/{project.slug}/loop/"
    services.loop_policy_update(project=project, user=None, changes={"pairs_budget": 40})
    data = form_of(client.get(url))
    services.loop_policy_update(
        project=project, user=make_user(Role.ENGINEER, "other"), changes={"eta": 0.25}
    )
    data["pairs_budget"] = "90"
    response = client.post(url, data)
    assert response.status_code == 409
    assert "changed by other" in page_text(response) and "nothing was saved" in page_text(response)
    assert 'value="90"' in re.search(
        r'<tr data-field="pairs_budget">.*?</tr>', response.content.decode(), re.S
    ).group(0)
    policy = LoopPolicy.objects.get(project=project)
    assert policy.pairs_budget == 40 and policy.eta == 0.25


def test_managers_read_the_page_but_cannot_edit_and_annotators_are_refused(client, project, make_user):
    url = f"/projects/{project.slug}/loop/"
    services.loop_policy_update(project=project, user=None, changes={"pairs_budget": 40})
    login(client, make_user(Role.MANAGER, "boss"))
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<fieldset disabled class="policy-fields">' in html and 'id="policy-save"' not in html
    assert 'id="rollback-form"' not in html
    data = form_of(response)
    data["pairs_budget"] = "99"
    assert client.post(url, data).status_code == 403
    assert client.post(f"{url}rollback/", {"reason": "no"}).status_code == 403
    assert LoopPolicy.objects.get(project=project).pairs_budget == 40

    login(client, make_user(Role.ANNOTATOR, "judge"))
    assert client.get(url).status_code == 403
    assert client.post(url, data).status_code == 403
    assert client.post(f"{url}rollback/", {"reason": "no"}).status_code == 403

    # Another project's loop answers like one that does not exist.
    login(client, make_user(Role.ENGINEER, "eng2"))
    theirs = project_create(name="Theirs", slug="theirs-loop")
    assert client.get(f"/projects/{theirs.slug}/loop/").status_code == 404


def test_a_rollback_from_the_loop_page_needs_a_reason_and_is_recorded(client, project, engineer):
    planted = plant_comparison(project, judged=False)
    old, new = planted["old"], planted["new"]
    services.loop_promote(project=project, user=engineer, restorer_id=new.pk, reason="try the new one")
    login(client, engineer)
    url = f"/projects/{project.slug}/loop/rollback/"
    refused = client.post(url, {"kind": "restorer", "reason": "", "back": "loop"})
    assert refused.status_code == 400 and "reason: This field may not be blank." in page_text(refused)
    # Shown again at the rollback's address: the page's own forms still post where they belong.
    assert f'action="/projects/{project.slug}/loop/" id="policy-form"' in refused.content.decode()
    assert LoopState.objects.get(project=project).restorer == new
    done = client.post(url, {"kind": "restorer", "reason": "blurry eyes", "back": "loop"})
    assert done.status_code == 302
    assert LoopState.objects.get(project=project).restorer == old
    change = VersionChange.objects.filter(project=project, action="rollback").get()
    assert change.by == engineer and change.reason == "blurry eyes" and change.previous == new
    assert "blurry eyes" in page_text(client.get(done["Location"]))
