"""The demo: a project of synthetic faces with classical candidates, gold pairs, and a user of each role."""

import io

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation_web import ml_bridge
from annotation_web.accounts.models import Role
from annotation_web.accounts.services import membership_add, user_get_or_create
from annotation_web.labeling import imports, pairs
from annotation_web.labeling.ingest import SourceFile
from annotation_web.labeling.models import Project

DEMO_USERS = [
    ("annotator1", Role.ANNOTATOR),
    ("annotator2", Role.ANNOTATOR),
    ("annotator3", Role.ANNOTATOR),
    ("engineer", Role.ENGINEER),
    ("manager", Role.MANAGER),
]
DEMO_PASSWORD = "demo-password"
# Synthetic faces for the demo come from seeds past every training split of restorer.data.
DEMO_SEED_OFFSET = 9_000_000


class Command(BaseCommand):
    help = "Create the demo project (synthetic faces, classical candidates, gold pairs) and demo users."

    def add_arguments(self, parser):
        parser.add_argument("--faces", type=int, default=40)
        parser.add_argument("--gold-every", type=int, default=5, help="one gold pair per this many inputs")

    def handle(self, *args, **options):
        # The demo users' password is published (README, infra/demo.sh): they may only exist on a demo.
        if not settings.DEMO:
            raise CommandError(
                "demo_setup creates users with a published password: it runs only in the demo configuration "
                "(PREF_DEMO=1, as infra/demo.sh sets)"
            )
        users = [
            user_get_or_create(username=username, password=DEMO_PASSWORD, role=role)
            for username, role in DEMO_USERS
        ]
        project = Project.objects.filter(slug="demo").first() or pairs.project_create(
            name="Demo: synthetic faces", slug="demo", overlap=1, gold_rate=0.1
        )
        for user in users:
            membership_add(user=user, project=project)
        project.description = (
            "Synthetic 64x64 faces from the gan-face-generate DCGAN (trained on DigiFace1M; research use only). "
            "Candidates are classical restorations (bicubic + unsharp mask), not a learned model."
        )
        project.save(update_fields=["description"])
        seeds = [DEMO_SEED_OFFSET + i for i in range(options["faces"])]
        faces = ml_bridge.synthetic_face_images(seeds, resolution=project.resolution)
        sources = []
        for seed, face in zip(seeds, faces):
            buffer = io.BytesIO()
            face.save(buffer, format="PNG")
            sources.append(SourceFile(f"synthetic-{seed}.png", buffer.getvalue()))
        report = imports.face_inputs_import(project=project, source=sources, batch="demo-1")
        for index, input_id in enumerate(tqdm(report.imported, desc="candidates", unit="input")):
            face_input = project.inputs.get(pk=input_id)
            candidates = pairs.classical_candidates_create(face_input=face_input)
            pairs.pairs_create_all_for_input(face_input=face_input, candidates=candidates, batch="demo-1")
            if index % options["gold_every"] == 0:
                pairs.gold_pair_create_for_input(face_input=face_input)
        self.stdout.write(
            f"demo ready: project 'demo' with {project.inputs.count()} inputs and {project.pairs.count()} pairs; "
            f"users {', '.join(u for u, _ in DEMO_USERS)} (password '{DEMO_PASSWORD}')"
        )
