from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("loop", "0005_policy_baseline_psnr_limit"),
    ]

    operations = [
        migrations.AddField(
            model_name="looppolicy",
            name="reward_tolerance_se",
            field=models.FloatField(default=1.0),
        ),
    ]
