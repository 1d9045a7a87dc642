from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation_web.labeling import imports, pairs, selectors
from annotation_web.labeling.errors import LabelingError
from annotation_web.labeling.ingest import count_source, iter_source


class Command(BaseCommand):
    help = "Import face images from a folder, a .zip or an s3://bucket/prefix into a project."

    def add_arguments(self, parser):
        parser.add_argument("source", help="folder, zip file or s3://bucket/prefix")
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--batch", default="", help="batch label recorded on every input")
        parser.add_argument("--instruction", default="", help="free text added to every instruction")
        parser.add_argument(
            "--classical-candidates",
            action="store_true",
            help="also make classical candidates and their pairs",
        )
        parser.add_argument(
            "--gold", action="store_true", help="also make a gold pair (HQ vs heavy degradation) per input"
        )

    def handle(self, *args, **options):
        try:
            project = selectors.project_get(slug=options["project"])
            source = iter_source(options["source"])
        except LabelingError as exc:
            raise CommandError(exc.message) from exc
        bar = tqdm(
            total=count_source(options["source"]),
            unit="img",
            desc="import",
            disable=options["verbosity"] == 0,
        )
        try:
            report = imports.face_inputs_import(
                project=project,
                source=source,
                batch=options["batch"],
                extra_instruction=options["instruction"],
                on_progress=lambda done, name: bar.update(1),
            )
        except LabelingError as exc:
            raise CommandError(exc.message) from exc
        finally:
            bar.close()
        for input_id in report.imported:
            face_input = project.inputs.get(pk=input_id)
            if options["classical_candidates"]:
                candidates = pairs.classical_candidates_create(face_input=face_input)
                pairs.pairs_create_all_for_input(
                    face_input=face_input, candidates=candidates, batch=options["batch"]
                )
            if options["gold"]:
                pairs.gold_pair_create_for_input(face_input=face_input)
        for message in report.rejected:
            self.stderr.write(f"rejected: {message}")
        self.stdout.write(
            f"imported {len(report.imported)}, duplicates {len(report.duplicates)}, rejected {len(report.rejected)}"
        )
