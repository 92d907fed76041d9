"""A minimal Django project for the coordinator tests."""

import os
import tempfile

SECRET_KEY = "racefree-tests-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_project.tasks"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A file, not :memory:, so that threads and their connections share one database.
_DB = os.path.join(tempfile.gettempdir(), f"racefree-django-{os.getpid()}.sqlite3")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _DB,
        "OPTIONS": {"timeout": 30},
        "TEST": {"NAME": _DB},
    }
}
RACEFREE = {"STORE": "memory://", "TASK_TTL": 30}
