"""Steps of test_django_postgres.py, each run in a process of its own as a project whose
DATABASES["default"] is PostgreSQL (settings read RACEFREE_TEST_POSTGRES) and whose RACEFREE
STORE is "django": `migrate`, `rollback`, `create-task`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

import racefree  # noqa: E402
import racefree.django  # noqa: E402
from django_project.tasks.models import ExampleTask  # noqa: E402


def rollback() -> str:
    """A claim and a lease taken inside an atomic() block that fails survive it; Django's own
    insert in such a block does not."""
    store = racefree.django.store()
    counter, lock = racefree.Counter(store, "task:1"), racefree.StartLock(store, "tasks")
    try:
        with transaction.atomic():
            ExampleTask.objects.create(message="rolled back")
            counter.claim("exec-a")
            lease = lock.try_start("report", ttl=60)
            raise RuntimeError("the request fails")
    except RuntimeError:
        pass
    kept = counter.index_of("exec-a") == 0 and lock.holder("report")[0] == lease.token
    rolled_back = not ExampleTask.objects.filter(message="rolled back").exists()
    return f"kept={kept} rolled_back={rolled_back}"


if __name__ == "__main__":
    action = sys.argv[1]
    assert connection.vendor == "postgresql", connection.vendor
    if action == "migrate":
        call_command("migrate", run_syncdb=True, verbosity=0)
    elif action == "rollback":
        print(rollback())
    elif action == "create-task":
        print(ExampleTask.objects.create(message="hello").pk)
    else:
        sys.exit(f"unknown action {action!r}")
