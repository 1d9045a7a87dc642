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
import math
import random
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
from annotation_web.accounts.services import membership_add, token_for_user, user_get_or_create
from annotation_web.labeling.models import FaceInput, Project

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
    stop_reason: str = ""
    due: float = 0.0  # monotonic time of this person's next submit (--pace)
    shown_at: float | None = None  # when the pair they hold was served
    dry: bool = False  # the queue had nothing for them at the last ask
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
            "--oracle",
            choices=ml_bridge.oracle_distance_names(),
            default=ml_bridge.DEFAULT_ORACLE,
            help="the distance to the HQ the simulated people judge by (reward_model.oracle); the default, "
            "identity_sharpness, is one no RL term, reward-model input or guard computes: what RL learns of it "
            "comes through the judgments",
        )
        parser.add_argument(
            "--judgments",
            type=int,
            default=50,
            help="at most this many submits PER ANNOTATOR (not in total; ignored with --forever)",
        )
        parser.add_argument(
            "--pace",
            type=float,
            default=0.0,
            help="seconds a judgment takes a person, on average: each annotator's time per judgment is drawn "
            "from a lognormal around it (0: as fast as the server answers)",
        )
        parser.add_argument(
            "--forever",
            action="store_true",
            help="run until stopped: when the queue is empty, wait and ask again instead of stopping",
        )
        parser.add_argument(
            "--poll", type=float, default=10.0, help="with --forever: seconds between asks of an empty queue"
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
        if options["pace"] < 0 or options["poll"] <= 0:
            raise CommandError("--pace must be >= 0 and --poll > 0")
        self.pace, self.forever, self.poll = options["pace"], options["forever"], options["poll"]
        self.rng = random.Random(options["seed"])
        # Settings not given are left to the oracle, whose defaults depend on its distance.
        oracle_settings = {
            name: options[name]
            for name in ("temperature", "tie_margin", "both_bad_threshold")
            if options[name] is not None
        }
        if options["oracle"] not in ml_bridge.oracle_distance_names():
            names = ", ".join(ml_bridge.oracle_distance_names())
            raise CommandError(
                f"--oracle {options['oracle']!r} is not an oracle distance; expected one of {names}"
            )
        if oracle_settings.get("temperature", 1.0) <= 0:
            raise CommandError("--temperature must be positive")
        import httpx

        self.base_url = options["base_url"].rstrip("/") + "/"
        self.slug = options["project"]
        indices = range(1, options["count"] + 1)
        # One oracle distance (its networks and caches) shared by every simulated annotator.
        try:
            oracles = ml_bridge.oracle_annotators(
                options["kind"],
                seeds=[options["seed"] * 1000 + index for index in indices],
                distance=options["oracle"],
                **oracle_settings,
            )
        except ml_bridge.OracleUnavailableError as error:
            raise CommandError(f"--oracle {options['oracle']} is unavailable here: {error}") from error
        annotators = []
        project = Project.objects.filter(slug=self.slug).first()
        for index, oracle in zip(indices, oracles):
            username = f"sim-{options['kind']}-{index}"
            # A random password: simulated users authenticate by token only.
            user = user_get_or_create(
                username=username, password=secrets.token_urlsafe(24), role=Role.ANNOTATOR
            )
            if project is not None:  # annotators judge only the projects they belong to
                membership_add(user=user, project=project)
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
            max_judgments = math.inf if self.forever else options["judgments"]
            try:
                # Each simulated annotator holds a reservation at the same time, like people do; the one whose
                # next submit is due first goes next (round robin when there is no pace).
                while not all(a.done for a in annotators):
                    annotator = min((a for a in annotators if not a.done), key=lambda a: a.due)
                    time.sleep(max(0.0, annotator.due - time.monotonic()))
                    self._step(annotator, max_judgments=max_judgments)
            except KeyboardInterrupt:
                self.stdout.write("stopped")
            elapsed = time.monotonic() - started

        total = sum(a.submitted for a in annotators)
        for annotator in annotators:
            counts = ", ".join(f"{choice} {n}" for choice, n in sorted(annotator.choices.items()))
            stop = f"; {annotator.stop_reason}" if annotator.stop_reason else ""
            self.stdout.write(
                f"{annotator.username}: {annotator.submitted} submitted ({counts or 'none'}){stop}"
            )
            for message in annotator.errors[:5]:
                self.stderr.write(f"  {annotator.username}: {message}")
        self.stdout.write(
            f"{len(annotators)} simulated {options['kind']} annotator(s) (oracle {options['oracle']}) submitted"
            f" {total} judgments on "
            f"'{self.slug}' in {elapsed:.1f} s"
            + ("" if self.forever else f" (--judgments {options['judgments']} is per annotator)")
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
                    self._queue_dry(annotator)
                    return
                self._served(annotator)
            pair = annotator.pair
            shown_at = annotator.shown_at or time.monotonic()
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
        if annotator.submitted >= max_judgments:
            annotator.done = True
            annotator.stop_reason = f"reached --judgments {max_judgments} (per annotator)"
        elif annotator.pair is None:
            self._queue_dry(annotator)
        else:
            self._served(annotator)

    def _served(self, annotator: SimulatedAnnotator) -> None:
        """A pair is on their screen: they submit after a person's time (lognormal, mean --pace)."""
        if annotator.dry:
            self.stdout.write(f"{annotator.username}: new pairs in the queue, judging again")
            annotator.dry = False
        annotator.shown_at = time.monotonic()
        if self.pace > 0:
            sigma = 0.5  # a person's times per judgment: right-skewed, mostly within 0.5x-2x of the mean
            annotator.due = annotator.shown_at + self.rng.lognormvariate(
                math.log(self.pace) - sigma**2 / 2, sigma
            )
        else:
            annotator.due = annotator.shown_at

    def _queue_dry(self, annotator: SimulatedAnnotator) -> None:
        """Say it: an empty queue is why a run ends early (or, with --forever, why it waits)."""
        annotator.shown_at = None
        if self.forever:
            if not annotator.dry:
                self.stdout.write(
                    f"{annotator.username}: the queue of '{self.slug}' ran dry after {annotator.submitted} "
                    f"judgments; asking again every {self.poll:g} s"
                )
            annotator.dry = True
            annotator.due = time.monotonic() + self.poll
            return
        annotator.done = True
        annotator.stop_reason = "the queue ran dry"
        self.stdout.write(
            f"{annotator.username}: the queue of '{self.slug}' ran dry after {annotator.submitted} judgments"
        )

    def _judge(self, annotator: SimulatedAnnotator, pair: dict) -> str:
        if annotator.oracle.kind == "spammer":  # looks at nothing
            return SCREEN_CHOICE_OF_ORACLE_OUTCOME[annotator.oracle.judge(None, None, None, shown_left="a")]
        hq = self._hq_image(pair["reservation"])
        left = self._image(annotator, pair["left_url"])
        right = self._image(annotator, pair["right_url"])
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

    def _image(self, annotator: SimulatedAnnotator, url: str) -> Image.Image:
        # Image URLs are handles of the annotator's own reservation: fetched with their credentials.
        headers = {"Authorization": f"Token {annotator.token}"}
        response = self.images.get(urljoin(self.base_url, url), headers=headers)
        if response.status_code != 200:
            raise ApiError(response.status_code, f"image {url[:80]} could not be fetched")
        if len(response.content) > MAX_IMAGE_BYTES:
            raise ApiError(413, f"image {url[:80]} is over {MAX_IMAGE_BYTES} bytes")
        try:
            return Image.open(io.BytesIO(response.content)).convert("RGB")
        except UnidentifiedImageError as exc:
            raise ApiError(415, f"{url[:80]} is not an image") from exc
