"""infra/docker-compose.yml, the scale-out picture of docs/deployment.md, read as data: every app service on the
same database, broker and storage; workers for every queue the job kinds name; a GPU for the train workers;
exactly one beat; no host folder mounted (files live in S3)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from annotation_web.jobs import kinds

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "infra" / "docker-compose.yml"
# What every process of the app must agree on (the names annotation_web/settings.py reads).
SHARED_ENV = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REDIS_CACHE_URL",
    "PREF_STORAGE",
    "PREF_S3_ENDPOINT_URL",
    "PREF_S3_BUCKET",
    "PREF_S3_ACCESS_KEY",
    "PREF_S3_SECRET_KEY",
    "PREF_S3_REGION",
    "DJANGO_SECRET_KEY",
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def command(service: dict) -> list[str]:
    value = service.get("command") or []
    return value.split() if isinstance(value, str) else [str(part) for part in value]


def app_services(compose: dict) -> dict[str, dict]:
    """The services that run the platform's image (built from infra/Dockerfile)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if (service.get("build") or {}).get("dockerfile") == "infra/Dockerfile"
    }


def is_celery(service: dict, role: str) -> bool:
    argv = command(service)
    return argv[:3] == ["celery", "-A", "annotation_web"] and role in argv


def worker_queues(service: dict) -> set[str]:
    argv = command(service)
    for i, part in enumerate(argv):
        if part in ("-Q", "--queues"):
            return set(argv[i + 1].split(","))
        if part.startswith(("-Q=", "--queues=")):
            return set(part.split("=", 1)[1].split(","))
    raise AssertionError(f"a worker without -Q consumes Celery's default queue only: {argv}")


def test_the_services_of_a_scaled_out_installation(compose):
    services = compose["services"]
    assert {"web", "postgres", "redis", "s3", "worker-default", "worker-train", "beat"} <= set(services)
    assert command(services["web"])[:2] == ["gunicorn", "annotation_web.wsgi"]
    # Everything that runs the app's code is an app service (and so gets the shared environment below).
    for name, service in services.items():
        argv = command(service)
        if argv[:1] in (["celery"], ["gunicorn"]) or "manage.py" in argv:
            assert name in app_services(compose), name


def test_every_app_service_shares_database_broker_and_storage(compose):
    apps = app_services(compose)
    assert len(apps) >= 4
    settings_source = (REPO / "annotation_web" / "settings.py").read_text()
    for key in SHARED_ENV:
        assert f'"{key}"' in settings_source, f"settings.py reads no {key}"
        values = {name: environment(service).get(key) for name, service in apps.items()}
        assert None not in values.values(), f"{key} missing in {[n for n, v in values.items() if v is None]}"
        assert len(set(values.values())) == 1, f"{key} differs between services: {values}"
    env = environment(apps["web"])
    assert env["PREF_STORAGE"] == "s3"
    assert env["DATABASE_URL"].startswith("postgres://")
    assert env["CELERY_BROKER_URL"].startswith("redis://")


def test_exactly_one_beat_and_no_embedded_one(compose):
    services = compose["services"]
    beats = [name for name, service in services.items() if is_celery(service, "beat")]
    assert len(beats) == 1, beats
    assert (services[beats[0]].get("deploy") or {}).get("replicas", 1) == 1
    for name, service in services.items():
        if is_celery(service, "worker"):
            assert not {"-B", "--beat"} & set(command(service)), f"{name} embeds a beat"


def test_the_workers_cover_every_queue_of_the_job_kinds(compose):
    consumed: set[str] = set()
    for service in compose["services"].values():
        if is_celery(service, "worker"):
            consumed |= worker_queues(service)
    wanted = {spec.queue for spec in kinds.registered()} | {kinds.DEFAULT_QUEUE, "train"}
    assert consumed == wanted


def test_the_train_workers_request_a_gpu(compose):
    train = [
        s for s in compose["services"].values() if is_celery(s, "worker") and "train" in worker_queues(s)
    ]
    assert train
    for service in train:
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
        assert environment(service).get("PREF_DEVICE") == "cuda"


def test_no_service_mounts_a_host_folder(compose):
    named = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            if isinstance(volume, str):
                source = volume.split(":", 1)[0]
                kind = "volume" if ":" in volume else "anonymous"
            else:
                source, kind = volume.get("source", ""), volume.get("type", "volume")
            assert kind in ("volume", "anonymous", "tmpfs"), f"{name} mounts {volume!r}"
            assert kind != "volume" or source in named, f"{name} mounts a host folder: {volume!r}"
    # The app's files are in S3 and its VAR_DIR is each container's own: no app service mounts anything.
    for name, service in app_services(compose).items():
        assert not service.get("volumes"), f"{name} mounts {service['volumes']!r}"
