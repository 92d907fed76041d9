"""racefree's tables in the project's own database, for ``RACEFREE = {"STORE": "django"}``.

Created by racefree itself (``racefree.migrate``), over its own connection, in the database the
store names; with any other store this migration does nothing.
"""

from typing import Any, List, Tuple

from django.db import migrations  # type: ignore[import-untyped]


def create_racefree_schema(apps: Any, schema_editor: Any) -> None:
    import racefree
    from racefree.django import database_alias, settings, store_url

    configured = settings()["STORE"]
    if not isinstance(configured, str) or database_alias(configured) != schema_editor.connection.alias:
        return
    racefree.migrate(store_url(configured))


class Migration(migrations.Migration):  # type: ignore[misc]
    # racefree writes over its own connection: Django's migration transaction must not hold
    # the database (SQLite's write lock) meanwhile.
    atomic = False
    initial = True
    dependencies: List[Tuple[str, str]] = []
    operations = [migrations.RunPython(create_racefree_schema, migrations.RunPython.noop)]
