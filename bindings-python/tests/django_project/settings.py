"""A minimal Django project for the coordinator tests."""

import os
import tempfile

SECRET_KEY = "racefree-tests-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["racefree.django", "django_project.tasks"]
ROOT_URLCONF = "django_project.urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A file, not :memory:, so that threads and their connections share one database.
# Worker processes spawned by a test are handed the test's database file and racefree store.
_DB = os.environ.get("RACEFREE_TEST_DB") or os.path.join(
    tempfile.gettempdir(), f"racefree-django-{os.getpid()}.sqlite3"
)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _DB,
        "OPTIONS": {"timeout": 30},
        "TEST": {"NAME": _DB},
    }
}
# A project whose own database is PostgreSQL (test_django_postgres.py hands it "host:port:name").
if os.environ.get("RACEFREE_TEST_POSTGRES"):
    _host, _port, _name = os.environ["RACEFREE_TEST_POSTGRES"].split(":")
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.postgresql", "NAME": _name, "USER": "racefree", "HOST": _host, "PORT": _port}
    }
RACEFREE = {
    "STORE": os.environ.get("RACEFREE_TEST_STORE", "memory://"),
    "TASK_TTL": float(os.environ.get("RACEFREE_TEST_TTL", "30")),
}
