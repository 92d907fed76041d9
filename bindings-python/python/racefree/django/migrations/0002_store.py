"""The admin's unmanaged model: no table, only its content type and permissions."""

from typing import Any, List

from django.db import migrations, models  # type: ignore[import-untyped]


class Migration(migrations.Migration):  # type: ignore[misc]
    dependencies = [("racefree", "0001_initial")]
    operations: List[Any] = [
        migrations.CreateModel(
            name="Store",
            fields=[("id", models.BigAutoField(primary_key=True, serialize=False))],
            options={
                "managed": False,
                "default_permissions": (),
                "permissions": [
                    ("view_store", "Can see racefree's store"),
                    ("release_lease", "Can release a racefree lease and sweep the store"),
                ],
                "verbose_name": "store",
                "verbose_name_plural": "store",
            },
        )
    ]
