"""``RACEFREE = {"STORE": "django"}``: racefree in the project's own database, over its own
connection."""

import sqlite3

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import transaction

import racefree
import racefree.django
from django_project.tasks.models import ExampleTask

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh():
    racefree.django.reset()
    yield
    racefree.django.reset()


def test_store_urls_come_from_databases(settings):
    databases = {
        **settings.DATABASES,
        "pg": {"ENGINE": "django.db.backends.postgresql", "NAME": "app db", "USER": "app", "PASSWORD": "p@ss:w/rd",
               "HOST": "db.internal", "PORT": "6432", "OPTIONS": {"sslmode": "verify-full"}},
        "socket": {"ENGINE": "django.db.backends.postgresql", "NAME": "app", "USER": "app", "HOST": "/var/run/postgresql"},
        "standbys": {"ENGINE": "django.db.backends.postgresql", "NAME": "app", "HOST": "db1,db2", "PORT": "5432,5433",
                     "OPTIONS": {"target_session_attrs": "read-write"}},
        "one_port": {"ENGINE": "django.db.backends.postgresql", "NAME": "app", "HOST": "db1, db2", "PORT": "6432"},
        "ports_mismatch": {"ENGINE": "django.db.backends.postgresql", "NAME": "app", "HOST": "db1,db2", "PORT": "1,2,3"},
        "empty_host": {"ENGINE": "django.db.backends.postgresql", "NAME": "app", "HOST": "db1,", "PORT": ""},
        "oracle": {"ENGINE": "django.db.backends.oracle", "NAME": "x"},
        "relative": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"},
    }
    default = settings.DATABASES["default"]["NAME"]
    # SQLite: a file of racefree's own beside Django's (two SQLite copies must not share a file).
    assert racefree.django.store_url("django") == f"sqlite://{default}-racefree"
    assert racefree.django.store_url("django://default?namespace=app") == f"sqlite://{default}-racefree?namespace=app"

    def store_url(url):
        return racefree.django.store_url(url, databases)

    assert store_url("django://pg") == "postgres://app:p%40ss%3Aw%2Frd@db.internal:6432/app%20db?sslmode=verify-full"
    assert store_url("django://socket") == "postgres://app@localhost/app?host=/var/run/postgresql"
    # A primary and its standbys, as libpq reads HOST and PORT: lists, one port or one per host.
    assert store_url("django://standbys") == "postgres://db1:5432,db2:5433/app?target_session_attrs=read-write"
    assert store_url("django://one_port") == "postgres://db1:6432,db2:6432/app"
    racefree.check_url(store_url("django://standbys"))
    with pytest.raises(ImproperlyConfigured, match="2 hosts in HOST but 3 ports"):
        store_url("django://ports_mismatch")
    with pytest.raises(ImproperlyConfigured, match="no empty item"):
        store_url("django://empty_host")
    racefree.check_url(store_url("django://pg"))
    racefree.check_url(store_url("django://socket"))
    with pytest.raises(ImproperlyConfigured, match="shares PostgreSQL"):
        store_url("django://oracle")
    with pytest.raises(ImproperlyConfigured, match="absolute"):
        store_url("django://relative")
    with pytest.raises(ImproperlyConfigured, match="no 'missing' database"):
        store_url("django://missing")
    settings.RACEFREE = {"STORE": "django://missing"}
    from racefree.django.checks import check_settings

    assert [e.id for e in check_settings()] == ["racefree.E002"]


def test_a_rolled_back_atomic_block_does_not_undo_a_claim_or_a_lease(settings):
    settings.RACEFREE = {"STORE": "django"}
    store = racefree.django.store()
    counter, lock = racefree.Counter(store, "task:1"), racefree.StartLock(store, "tasks")
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            assert counter.claim("exec-a").index == 0
            lease = lock.try_start("report", ttl=60)
            assert lease is not None
            raise RuntimeError("the request fails")
    assert counter.index_of("exec-a") == 0, "the rollback undid the claim"
    assert lock.holder("report")[0] == lease.token, "the rollback undid the lease"
    # Django's own writes in such a block are rolled back, as they should be.
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            ExampleTask.objects.create(message="rolled back")
            raise RuntimeError
    assert not ExampleTask.objects.filter(message="rolled back").exists()


def test_manage_py_migrate_creates_racefree_tables_in_the_database(settings, tmp_path):
    settings.RACEFREE = {"STORE": "django"}
    call_command("migrate", "racefree", "zero", verbosity=0)
    call_command("migrate", "racefree", verbosity=0)
    db = sqlite3.connect(settings.DATABASES["default"]["NAME"] + "-racefree")
    try:
        version = db.execute("SELECT value FROM racefree_meta WHERE name = 'schema_version'").fetchone()
    finally:
        db.close()
    assert version == (2,)


def test_manage_py_migrate_does_nothing_for_another_store(settings, tmp_path):
    settings.RACEFREE = {"STORE": f"sqlite:///{tmp_path}/elsewhere.db"}
    call_command("migrate", "racefree", "zero", verbosity=0)
    call_command("migrate", "racefree", verbosity=0)
    assert not (tmp_path / "elsewhere.db").exists()
