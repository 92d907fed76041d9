"""A Django project whose own database is PostgreSQL, with ``RACEFREE = {"STORE": "django"}``:
``manage.py migrate`` creates racefree's tables beside Django's, a failed ``atomic()`` block
keeps racefree's claims and leases, and six worker processes start a task exactly once."""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_a_project_on_postgresql_runs_its_task_once_from_six_workers(postgres_server, tmp_path):
    database = f"django_{os.getpid()}"
    postgres_server.psql(f"CREATE DATABASE {database}")
    env = {**os.environ, "RACEFREE_TEST_POSTGRES": f"127.0.0.1:{postgres_server.port}:{database}",
           "RACEFREE_TEST_STORE": "django"}

    def step(action: str) -> str:
        done = subprocess.run([sys.executable, str(HERE / "django_postgres_project.py"), action], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def sql(query: str) -> str:
        return postgres_server.psql(query, database)

    step("migrate")
    assert sql("SELECT value FROM racefree_meta WHERE name = 'schema_version'") == "2"
    assert sql("SELECT count(*) FROM tasks_exampletask") == "0"
    assert step("rollback") == "kept=True rolled_back=True"

    pk = int(step("create-task"))
    go = tmp_path / "go"
    workers = [subprocess.Popen([sys.executable, str(HERE / "django_worker.py"), str(pk), str(go)], env=env,
                                stdout=subprocess.PIPE, text=True) for _ in range(6)]
    for worker in workers:
        assert worker.stdout.readline().strip() == "READY"
    go.touch()
    outcomes = [w.communicate(timeout=120)[0].strip() for w in workers]
    assert all(w.returncode == 0 for w in workers), outcomes
    assert sorted(outcomes) == ["REFUSED"] * 5 + ["STARTED"], outcomes
    assert sql(f"SELECT status, runs FROM tasks_exampletask WHERE id = {pk}") == "done|1"
    # The coordinator's lease lives in the project's database.
    assert int(sql("SELECT count(*) FROM racefree_lock_tokens")) >= 1
