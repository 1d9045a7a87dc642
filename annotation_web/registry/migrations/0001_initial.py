# ModelVersion moves from labeling to registry without touching its rows: this migration only adopts, in
# Django's state, the table labeling's 0001 created (`labeling_modelversion`); labeling's 0002 then drops the
# model from its own state and points Candidate.model_version here; registry's 0002 renames the table.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('labeling', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ModelVersion',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('restorer', 'Diffusion restorer'), ('classical', 'Classical restoration (not a learned model)'), ('reference', 'Reference image (HQ original or a degraded copy)'), ('reward', 'Reward model')], max_length=16)),
                        ('name', models.CharField(max_length=100)),
                        ('version', models.PositiveIntegerField(default=1)),
                        ('description', models.TextField(blank=True)),
                        ('artifact_key', models.CharField(blank=True, max_length=500)),
                        ('config', models.JSONField(blank=True, default=dict)),
                        ('metrics', models.JSONField(blank=True, default=dict)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('parent', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='children', to='registry.modelversion')),
                    ],
                    options={
                        'db_table': 'labeling_modelversion',
                        'constraints': [models.UniqueConstraint(fields=('kind', 'name', 'version'), name='model_version_unique')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
