"""Simulated annotators that judge through the HTTP API exactly like the browser does.

Each simulated person is a user `sim-<kind>-<i>` with the annotator role. They ask for the next pair, look at
the images they were served (`left_url` / `right_url`), ask an oracle annotator (`reward_model.oracle`, reached
through `annotation_web.ml_bridge`) which side is better and submit the screen side (`left` / `right` / `tie` / `both_bad`), using the submit's `next` to get
their following pair. Judgments are only ever written by the server.

The oracle needs the clean original: the command reads the HQ image of the reservation's input from the
storage, looking its key up in the database (read only). It never reads which candidate is `a` or `b`: the
oracle is asked about (left, right) with `shown_left="a"`, so a side bias acts on the screen side.
"""

from __future__ import annotations

import io
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from django.core.management.base import BaseCommand, CommandError
from PIL import Image, UnidentifiedImageError

from annotation_web import ml_bridge
from annotation_web.accounts.models import Role
from annotation_web.accounts.services import token_for_user, user_get_or_create
from annotation_web.labeling.models import FaceInput

KINDS = ("reliable", "noisy", "left_biased", "spammer", "adversarial")
# The oracle answers about (a, b) = (left image, right image) with a shown on the left.
SCREEN_CHOICE_OF_ORACLE_OUTCOME = {"a": "left", "b": "right", "tie": "tie", "both_bad": "both_bad"}
MAX_IMAGE_BYTES = 20 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


@dataclass
class SimulatedAnnotator:
    username: str
    token: str
    oracle: Any  # reward_model.oracle.OracleAnnotator, made by ml_bridge.oracle_annotators
    pair: dict | None = None
    done: bool = False
    submitted: int = 0
    choices: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


class Command(BaseCommand):
    help = (
        "Judge a project's pairs over the HTTP API with simulated annotators (an oracle that knows the HQ)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--count", type=int, default=1, help="how many simulated annotators")
        parser.add_argument("--kind", choices=KINDS, default="reliable")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="where the platform answers")
        parser.add_argument(
            "--judgments", type=int, default=50, help="at most this many submits per annotator"
        )
        parser.add_argument(
            "--temperature",
            type=float,
            default=None,
            help="oracle temperature in its distance's units (lower: more careful); default: the oracle's",
        )
        parser.add_argument("--tie-margin", type=float, default=None, help="default: the oracle's")
        parser.add_argument("--both-bad-threshold", type=float, default=None, help="default: the oracle's")
        parser.add_argument(
            "--seed", type=int, default=0, help="seeds the oracles (annotator i gets seed*1000+i)"
        )
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")

    def handle(self, *args, **options):
        if options["count"] < 1:
            raise CommandError("--count must be at least 1")
        if options["judgments"] < 1:
            raise CommandError("--judgments must be at least 1")
        # Settings not given are left to the oracle, whose defaults depend on its distance.
        oracle_settings = {
            name: options[name]
            for name in ("temperature", "tie_margin", "both_bad_threshold")
            if options[name] is not None
        }
        if oracle_settings.get("temperature", 1.0) <= 0:
            raise CommandError("--temperature must be positive")
        import httpx

        self.base_url = options["base_url"].rstrip("/") + "/"
        self.slug = options["project"]
        indices = range(1, options["count"] + 1)
        # One perceptual network shared by every simulated annotator.
        oracles = ml_bridge.oracle_annotators(
            options["kind"], seeds=[options["seed"] * 1000 + index for index in indices], **oracle_settings
        )
        annotators = []
        for index, oracle in zip(indices, oracles):
            username = f"sim-{options['kind']}-{index}"
            # A random password: simulated users authenticate by token only.
            user = user_get_or_create(
                username=username, password=secrets.token_urlsafe(24), role=Role.ANNOTATOR
            )
            annotators.append(
                SimulatedAnnotator(username=username, token=token_for_user(user=user), oracle=oracle)
            )

        # Two clients: the API one carries the token; the image one never does (images may live on S3).
        with (
            httpx.Client(base_url=self.base_url, timeout=options["timeout"]) as self.api,
            httpx.Client(timeout=options["timeout"], follow_redirects=True) as self.images,
        ):
            self._check_project(annotators[0])
            started = time.monotonic()
            # Round robin: every simulated annotator holds a reservation at the same time, like people do.
            while not all(a.done for a in annotators):
                for annotator in annotators:
                    if not annotator.done:
                        self._step(annotator, max_judgments=options["judgments"])
            elapsed = time.monotonic() - started

        total = sum(a.submitted for a in annotators)
        for annotator in annotators:
            counts = ", ".join(f"{choice} {n}" for choice, n in sorted(annotator.choices.items()))
            self.stdout.write(f"{annotator.username}: {annotator.submitted} submitted ({counts or 'none'})")
            for error in annotator.errors[:5]:
                self.stderr.write(f"  {annotator.username}: {error}")
        self.stdout.write(
            f"{len(annotators)} simulated {options['kind']} annotator(s) submitted {total} judgments on "
            f"'{self.slug}' in {elapsed:.1f} s"
        )

    # --- one annotator, one step ---------------------------------------------------------------------

    def _post(self, annotator: SimulatedAnnotator, path: str, body: dict) -> dict:
        response = self.api.post(path, json=body, headers={"Authorization": f"Token {annotator.token}"})
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, str(detail)[:300])
        return response.json()

    def _check_project(self, annotator: SimulatedAnnotator) -> None:
        response = self.api.get(
            f"api/projects/{self.slug}/me/stats/", headers={"Authorization": f"Token {annotator.token}"}
        )
        if response.status_code != 200:
            raise CommandError(
                f"{self.base_url} does not serve project {self.slug!r} (HTTP {response.status_code})"
            )

    def _step(self, annotator: SimulatedAnnotator, *, max_judgments: int) -> None:
        try:
            if annotator.pair is None:
                payload = self._post(annotator, f"api/projects/{self.slug}/next/", {"exclude": []})
                annotator.pair = payload["pair"]
                if annotator.pair is None:
                    annotator.done = True
                    return
            pair = annotator.pair
            shown_at = time.monotonic()
            choice = self._judge(annotator, pair)
            result = self._post(
                annotator,
                "api/judgments/",
                {
                    "reservation": pair["reservation"],
                    "choice": choice,
                    "idempotency_key": uuid.uuid4().hex,
                    "client_duration_ms": int((time.monotonic() - shown_at) * 1000),
                    "next": {"exclude": []},
                },
            )
        except ApiError as exc:
            annotator.errors.append(str(exc))
            annotator.pair = None  # ask again: the server hands back a held reservation or a fresh one
            if len(annotator.errors) >= 10:
                annotator.done = True
            return
        annotator.submitted += 1
        annotator.choices[choice] += 1
        annotator.pair = result.get("next", {}).get("pair")
        if annotator.pair is None or annotator.submitted >= max_judgments:
            annotator.done = True

    def _judge(self, annotator: SimulatedAnnotator, pair: dict) -> str:
        if annotator.oracle.kind == "spammer":  # looks at nothing
            return SCREEN_CHOICE_OF_ORACLE_OUTCOME[annotator.oracle.judge(None, None, None, shown_left="a")]
        hq = self._hq_image(pair["reservation"])
        left, right = self._image(pair["left_url"]), self._image(pair["right_url"])
        return SCREEN_CHOICE_OF_ORACLE_OUTCOME[annotator.oracle.judge(hq, left, right, shown_left="a")]

    def _hq_image(self, reservation_id: str) -> Image.Image:
        from annotation_web.storage import get_storage

        hq_key = (
            FaceInput.objects.filter(pairs__reservations__pk=reservation_id)
            .values_list("hq_key", flat=True)
            .first()
        )
        if not hq_key:
            raise CommandError(
                f"the input of reservation {reservation_id} has no HQ image in this database: the oracle needs it "
                "(is --base-url serving the database this command is configured with?)"
            )
        return Image.open(io.BytesIO(get_storage().get(hq_key))).convert("RGB")

    def _image(self, url: str) -> Image.Image:
        response = self.images.get(urljoin(self.base_url, url))
        if response.status_code != 200:
            raise ApiError(response.status_code, f"image {url[:80]} could not be fetched")
        if len(response.content) > MAX_IMAGE_BYTES:
            raise ApiError(413, f"image {url[:80]} is over {MAX_IMAGE_BYTES} bytes")
        try:
            return Image.open(io.BytesIO(response.content)).convert("RGB")
        except UnidentifiedImageError as exc:
            raise ApiError(415, f"{url[:80]} is not an image") from exc
