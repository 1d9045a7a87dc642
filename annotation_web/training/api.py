"""Engineers trigger the ML loop's jobs (following and cancelling jobs is `jobs.api`, the model list
`registry.api`).

Every field of a request is checked against the bounds of the config it feeds before a job is queued (a worker
should never be the first to find a request wrong), requests are JSON objects only (a form body would leave
every field to its default), and job creation has a throttle scope of its own (`jobs`).

The request serializers and `JOB_REQUESTS` are shared with the job forms (`training.pages`): a form is checked
by the same serializer and queued by the same service as the API, so both refuse the same requests with the same
messages. A model version named by a request must belong to the request's project (`project_versions`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle, UserRateThrottle
from rest_framework.views import APIView

from annotation_web import ml_bridge
from annotation_web.accounts.models import User
from annotation_web.errors import NotFound
from annotation_web.jobs.models import Job
from annotation_web.jobs.serializers import JobSerializer
from annotation_web.labeling import access
from annotation_web.labeling.models import FaceInput, Project
from annotation_web.loop import evaluation
from annotation_web.parsers import SafeJSONParser
from annotation_web.permissions import IsEngineer
from annotation_web.registry.models import ModelKind, ModelVersion
from annotation_web.training import services

MAX_SEED = 2**31 - 1
REWARD_MAX_STEPS = 200_000
GENERATE_MAX_INPUTS = 100_000
GENERATE_MAX_PAIRS = 1_000_000
# The named configs of `rl_trainer.config.PRESETS` and `restorer.train.named_config` a request may ask for.
RL_PRESETS = ["test", "tiny", "tiny_preference", "base"]
RESTORER_CONFIGS = ["test", "tiny", "base"]
EVALUATE_MAX_SEEDS = 16
EVALUATE_MAX_STEPS = 1000


# --- which model versions a project may use -----------------------------------------------------------------


def project_versions(*, project: Project, kind: str, loadable: bool = True) -> QuerySet[ModelVersion]:
    """The versions of `kind` a job of `project` may use, newest first: those a job of this project made, and
    those no project's job made (registered by a command, shared by every project); with `loadable`, only those
    with an artifact. A version another project's job made is not this project's to use (nor to confirm: it
    reads as unknown)."""
    versions = ModelVersion.objects.filter(kind=kind).filter(
        Q(made_by_job__isnull=True) | Q(made_by_job__project=project)
    )
    return (versions.exclude(artifact_key="") if loadable else versions).order_by("-pk")


class VersionNotFound(NotFound):
    """A request names a model version its project does not have (an unknown id, or another project's version):
    404, as everywhere in the API; a form shows the message beside `field`."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field


class _ProjectRequest(serializers.Serializer):
    """A job request about `context["project"]`: the model versions it names (`version_fields`: field, kind) must
    be that project's, with an artifact to load. They are looked up last, once every field and the request's own
    checks (`check`: the configs' bounds) passed, so a request that is wrong answers 400 whatever ids it names."""

    version_fields: tuple[tuple[str, str], ...] = ()

    def check(self, attrs: dict) -> None:
        """The request's own checks across fields (a `serializers.ValidationError` says what is wrong)."""

    def validate(self, attrs: dict) -> dict:
        self.check(attrs)
        for field, kind in self.version_fields:
            self.project_version(attrs.get(field), kind=kind, field=field)
        return attrs

    def project_version(self, pk: int | None, *, kind: str, field: str) -> None:
        if pk is None:
            return
        project: Project = self.context["project"]
        version = project_versions(project=project, kind=kind, loadable=False).filter(pk=pk).first()
        if version is None:
            raise VersionNotFound(f"{field}: no {kind} version {pk} in project {project.slug}", field=field)
        if not version.artifact_key:
            raise serializers.ValidationError({field: [f"{version} has no artifact to load"]})

    def project_inputs(self, ids: list[int]) -> list[int]:
        project: Project = self.context["project"]
        found = set(FaceInput.objects.filter(project=project, pk__in=ids).values_list("pk", flat=True))
        missing = sorted(set(ids) - found)
        if missing:
            shown = ", ".join(str(pk) for pk in missing[:10]) + (" …" if len(missing) > 10 else "")
            raise serializers.ValidationError(f"not inputs of project {project.slug}: {shown}")
        return ids


# --- the requests ---------------------------------------------------------------------------------------------


class GenerateRequest(_ProjectRequest):
    version_fields = (
        ("restorer_id", ModelKind.RESTORER),
        ("reward_id", ModelKind.REWARD),
        ("cross_version_restorer_id", ModelKind.RESTORER),
    )
    restorer_id = serializers.IntegerField(min_value=1)
    reward_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Reward model that scores pairs (none: random).",
    )
    input_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=GENERATE_MAX_INPUTS,
        help_text="Inputs to sample (all of the project's when left out).",
    )
    samples_per_input = serializers.IntegerField(default=4, min_value=2, max_value=16)
    pairs_budget = serializers.IntegerField(required=False, min_value=1, max_value=GENERATE_MAX_PAIRS)
    random_fraction = serializers.FloatField(default=0.2, min_value=0.0, max_value=1.0)
    num_steps = serializers.IntegerField(default=20, min_value=1, max_value=1000)
    eta = serializers.FloatField(
        default=0.0, min_value=0.0, max_value=1.0, help_text="DDIM eta: 0 deterministic, 1 fully stochastic."
    )
    seed = serializers.IntegerField(default=0, min_value=0, max_value=MAX_SEED)
    acquisition = serializers.CharField(
        default="bald",
        max_length=32,
        help_text="Informative score of pair selection (reward_model.selection).",
    )
    max_per_input = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=GENERATE_MAX_PAIRS,
        help_text="Cap on informative pairs per input (not with spread).",
    )
    spread = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0.0,
        max_value=1000.0,
        help_text="Cap on informative pairs per input, as a multiple of the even share (not with max_per_input).",
    )
    agreement_share = serializers.FloatField(
        default=0.0,
        min_value=0.0,
        max_value=1.0,
        help_text="Share of the chosen pairs asked of two annotators.",
    )
    cross_version_restorer_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Restorer the cross-version pairs compare with.",
    )
    cross_version_fraction = serializers.FloatField(default=0.0, min_value=0.0, max_value=1.0)
    cross_version_fill = serializers.BooleanField(
        default=False,
        help_text="Fill the budget with pairs against other versions when samples are too alike.",
    )

    def validate_input_ids(self, value: list[int]) -> list[int]:
        return self.project_inputs(value)

    def check(self, attrs: dict) -> None:
        try:
            ml_bridge.pair_selection_validate(
                acquisition=attrs.get("acquisition", "bald"),
                max_per_input=attrs.get("max_per_input"),
                spread=attrs.get("spread"),
            )
        except ValueError as exc:
            message = str(exc)
            field = next((f for f in ("acquisition", "spread") if message.startswith(f)), "max_per_input")
            raise serializers.ValidationError({field: [message]}) from exc
        if attrs.get("cross_version_fraction", 0.0) > 0 and attrs.get("cross_version_restorer_id") is None:
            raise serializers.ValidationError(
                {"cross_version_restorer_id": ["a cross_version_fraction needs the restorer to compare with"]}
            )


class RewardRequest(_ProjectRequest):
    version_fields = (("compare_with_reward_id", ModelKind.REWARD),)
    size = serializers.ChoiceField(choices=["tiny", "small", "gpu"], default="small")
    max_steps = serializers.IntegerField(default=2000, min_value=1, max_value=REWARD_MAX_STEPS)
    seed = serializers.IntegerField(default=0, min_value=0, max_value=MAX_SEED)
    name = serializers.SlugField(required=False, default="", allow_blank=True, max_length=100)
    compare_with_reward_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="A reward model (the one in use) scored beside the new one on the same held-out judgments.",
    )

    def validate_size(self, value: str) -> str:
        if value not in ml_bridge.reward_sizes():
            raise serializers.ValidationError(f"not a reward-model size: {value!r}")
        return value


class RLRequest(_ProjectRequest):
    version_fields = (("restorer_id", ModelKind.RESTORER), ("reward_id", ModelKind.REWARD))
    restorer_id = serializers.IntegerField(min_value=1)
    reward_id = serializers.IntegerField(min_value=1)
    # the recipe that learns from the preferences (benchmarks/rl_gain.py); "tiny" is the plain DDPO one
    preset = serializers.ChoiceField(choices=RL_PRESETS, default="tiny_preference")
    overrides = serializers.DictField(
        required=False, default=dict, help_text="Fields of rl_trainer.config.RLConfig and their values."
    )
    exclude_input_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=GENERATE_MAX_INPUTS,
        help_text="Inputs RL never sees (the loop leaves out the project's held-out inputs).",
    )

    def validate_exclude_input_ids(self, value: list[int]) -> list[int]:
        return self.project_inputs(value)

    def check(self, attrs: dict) -> None:
        try:
            ml_bridge.rl_config_validate(preset=attrs["preset"], overrides=attrs.get("overrides") or {})
        except ValueError as exc:
            raise serializers.ValidationError({"overrides": [str(exc)]}) from exc


class RestorerTrainingRequest(_ProjectRequest):
    # Text checked against the names (a choice field would give the schema a second enum of RL_PRESETS' values).
    config = serializers.CharField(
        default="tiny", max_length=32, help_text="A named config of restorer.train: test, tiny or base."
    )
    overrides = serializers.DictField(
        required=False,
        default=dict,
        help_text="Top-level fields of restorer.train.TrainConfig and their values.",
    )
    name = serializers.SlugField(
        required=False,
        default="",
        allow_blank=True,
        max_length=100,
        help_text="Registry name (the project's).",
    )

    def validate_config(self, value: str) -> str:
        if value not in RESTORER_CONFIGS:
            raise serializers.ValidationError(f"one of {', '.join(RESTORER_CONFIGS)}, not {value!r}")
        return value

    def check(self, attrs: dict) -> None:
        try:
            ml_bridge.restorer_train_config(config=attrs["config"], overrides=attrs.get("overrides") or {})
        except ValueError as exc:
            raise serializers.ValidationError({"overrides": [str(exc)]}) from exc


class EvaluateRequest(_ProjectRequest):
    version_fields = (
        ("candidate_id", ModelKind.RESTORER),
        ("against_id", ModelKind.RESTORER),
        ("reward_id", ModelKind.REWARD),
    )
    candidate_id = serializers.IntegerField(min_value=1, help_text="The restorer to evaluate.")
    against_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="The restorer it is compared with (the one in use).",
    )
    reward_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Reward model of the learned-reward measure (the one in use).",
    )
    seeds = serializers.IntegerField(default=2, min_value=1, max_value=EVALUATE_MAX_SEEDS)
    num_steps = serializers.IntegerField(default=20, min_value=1, max_value=EVALUATE_MAX_STEPS)
    held_out_evaluator = serializers.ChoiceField(
        choices=list(ml_bridge.HELD_OUT_EVALUATORS),
        required=False,
        allow_null=True,
        help_text="What judges the two on the held-out inputs beside PSNR (default: what the guard of the loop"
        " policy's RL runs watches, as promotion does).",
    )


# --- the kinds a request may start, shared by the API and the forms -----------------------------------------


@dataclass(frozen=True)
class JobRequestKind:
    """One kind of job a request starts: its URL name, the serializer that checks the request and the service
    that queues the job."""

    name: str
    request: type[_ProjectRequest]
    create: Callable[..., Job]


JOB_REQUESTS: dict[str, JobRequestKind] = {
    spec.name: spec
    for spec in (
        JobRequestKind(
            "train-restorer",
            RestorerTrainingRequest,
            services.restorer_training_job_create,
        ),
        JobRequestKind("generate", GenerateRequest, services.generation_job_create),
        JobRequestKind("train-reward", RewardRequest, services.reward_job_create),
        JobRequestKind("train-rl", RLRequest, services.rl_job_create),
        JobRequestKind("evaluate", EvaluateRequest, evaluation.evaluation_job_create),
    )
}


def job_request_serializer(*, name: str, project: Project, data: Any) -> _ProjectRequest:
    """The request serializer of kind `name`, bound to `data` and to the project it is about."""
    return JOB_REQUESTS[name].request(data=data, context={"project": project})


def job_request_queue(*, name: str, project: Project, user: User, validated: dict) -> Job:
    """Queue the job of a request its serializer accepted (a `ServiceError` says why the service refused)."""
    return JOB_REQUESTS[name].create(project=project, user=user, **validated)


# --- the endpoints ----------------------------------------------------------------------------------------------


class _JobCreateApi(APIView):
    permission_classes = [IsEngineer]
    parser_classes = [SafeJSONParser]
    throttle_scope = "jobs"
    # The defaults (anon, user) plus the job scope.
    throttle_classes = [AnonRateThrottle, UserRateThrottle, ScopedRateThrottle]
    request_name: str

    def post(self, request, slug: str):
        project = access.project_get_for_member(user=request.user, slug=slug)
        body = job_request_serializer(name=self.request_name, project=project, data=request.data)
        body.is_valid(raise_exception=True)
        job = job_request_queue(
            name=self.request_name, project=project, user=request.user, validated=body.validated_data
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class GenerateJobApi(_JobCreateApi):
    request_name = "generate"

    @extend_schema(request=GenerateRequest, responses={202: JobSerializer})
    def post(self, request, slug: str):
        return super().post(request, slug)


class RewardJobApi(_JobCreateApi):
    request_name = "train-reward"

    @extend_schema(request=RewardRequest, responses={202: JobSerializer})
    def post(self, request, slug: str):
        return super().post(request, slug)


class RLJobApi(_JobCreateApi):
    request_name = "train-rl"

    @extend_schema(request=RLRequest, responses={202: JobSerializer})
    def post(self, request, slug: str):
        return super().post(request, slug)


class RestorerTrainingJobApi(_JobCreateApi):
    request_name = "train-restorer"

    @extend_schema(request=RestorerTrainingRequest, responses={202: JobSerializer})
    def post(self, request, slug: str):
        return super().post(request, slug)


class EvaluateJobApi(_JobCreateApi):
    request_name = "evaluate"

    @extend_schema(request=EvaluateRequest, responses={202: JobSerializer})
    def post(self, request, slug: str):
        return super().post(request, slug)
