"""The coordinator across Django worker processes sharing one store — a SQLite file, or a Redis
server or a PostgreSQL database (as gunicorn or uvicorn workers would): exactly one process runs the task."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from django_project.tasks.models import ExampleTask

pytestmark = pytest.mark.django_db(transaction=True)
WORKER = Path(__file__).with_name("django_worker.py")


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"])
def test_six_worker_processes_one_run(tmp_path, request, backend):
    task = ExampleTask.objects.create(message="hello")
    store = {
        "sqlite": lambda: f"sqlite:///{tmp_path}/racefree.db",
        "redis": lambda: request.getfixturevalue("redis_url"),
        "postgres": lambda: request.getfixturevalue("postgres_url"),
    }[backend]()
    env = {
        **os.environ,
        "RACEFREE_TEST_DB": str(settings.DATABASES["default"]["NAME"]),
        "RACEFREE_TEST_STORE": store,
    }
    go = tmp_path / "go"
    workers = [
        subprocess.Popen([sys.executable, str(WORKER), str(task.pk), str(go)], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    for worker in workers:  # every worker has set Django up…
        assert worker.stdout.readline().strip() == "READY"
    go.touch()  # …then all start at once
    outcomes = [w.communicate(timeout=120)[0].strip() for w in workers]
    assert all(w.returncode == 0 for w in workers), outcomes
    assert sorted(outcomes) == ["REFUSED"] * 5 + ["STARTED"], outcomes
    task.refresh_from_db()
    assert (task.status, task.runs) == ("done", 1)
