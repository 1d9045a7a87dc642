from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0002_modelversion_moves_to_registry"),
        ("registry", "0002_modelversion_table"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="overlap_changed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="reservation",
            name="shown_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="candidate",
            name="generation",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
        migrations.RemoveConstraint(model_name="candidate", name="candidate_unique"),
        migrations.AddConstraint(
            model_name="candidate",
            constraint=models.UniqueConstraint(
                fields=("face_input", "model_version", "seed", "generation"), name="candidate_unique"
            ),
        ),
    ]
