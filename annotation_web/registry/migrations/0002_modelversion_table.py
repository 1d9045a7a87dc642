# The table takes the registry's name (`registry_modelversion`); rows, ids and the foreign keys pointing at it
# (Candidate.model_version, ModelVersion.parent) are kept by the rename. The content type (and so the admin
# permissions) follows the model to the registry app.

from django.db import migrations


def _move_content_type(apps, schema_editor, to_app: str, from_app: str) -> None:
    ContentType = apps.get_model('contenttypes', 'ContentType')
    types = ContentType.objects.using(schema_editor.connection.alias)
    if not types.filter(app_label=to_app, model='modelversion').exists():
        types.filter(app_label=from_app, model='modelversion').update(app_label=to_app)


def content_type_to_registry(apps, schema_editor):
    _move_content_type(apps, schema_editor, 'registry', 'labeling')


def content_type_to_labeling(apps, schema_editor):
    _move_content_type(apps, schema_editor, 'labeling', 'registry')


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('labeling', '0002_modelversion_moves_to_registry'),
        ('registry', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelTable(
            name='modelversion',
            table=None,
        ),
        migrations.RunPython(content_type_to_registry, content_type_to_labeling),
    ]
