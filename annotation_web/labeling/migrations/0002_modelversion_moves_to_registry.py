# ModelVersion now belongs to the registry app (registry's 0001 adopted the table): state only, no SQL.
# Candidate.model_version keeps its column and its foreign key; only the model it names in Django changes.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0001_initial'),
        ('registry', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='candidate',
                    name='model_version',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='candidates', to='registry.modelversion'),
                ),
                migrations.DeleteModel(
                    name='ModelVersion',
                ),
            ],
            database_operations=[],
        ),
    ]
