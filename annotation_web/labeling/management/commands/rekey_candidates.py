from django.core.management.base import BaseCommand, CommandError

from annotation_web.labeling import pairs, selectors
from annotation_web.labeling.errors import LabelingError


class Command(BaseCommand):
    help = (
        "Move candidate images stored under telling keys (model, seed, input, a gold pair's hq.png) to random "
        "keys, so that nothing an annotator is served can name them. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", help="project slug (default: every project)")

    def handle(self, *args, **options):
        try:
            project = selectors.project_get(slug=options["project"]) if options["project"] else None
        except LabelingError as exc:
            raise CommandError(exc.message) from exc
        moved = pairs.candidates_rekey(project=project)
        self.stdout.write(f"{moved} candidate images moved to random keys")
