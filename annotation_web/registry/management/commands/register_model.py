from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation_web.errors import ServiceError
from annotation_web.registry import selectors
from annotation_web.registry.services import model_version_register


class Command(BaseCommand):
    help = "Register a restorer or reward artifact folder (config.json, model.safetensors, metrics.json) as a model version."

    def add_arguments(self, parser):
        parser.add_argument("folder")
        parser.add_argument("--kind", required=True, choices=["restorer", "reward"])
        parser.add_argument("--name", required=True)
        parser.add_argument("--parent", type=int, help="id of the model version this one was made from")
        parser.add_argument("--description", default="")

    def handle(self, *args, **options):
        try:
            parent = selectors.model_version_get(pk=options["parent"]) if options["parent"] else None
        except ServiceError as exc:
            raise CommandError(f"no model version {options['parent']}") from exc
        try:
            version = model_version_register(
                kind=options["kind"],
                name=options["name"],
                folder=Path(options["folder"]),
                parent=parent,
                description=options["description"],
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"registered {version} (id {version.pk})")
