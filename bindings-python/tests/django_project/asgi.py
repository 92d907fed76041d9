"""The test project served as production serves it: ``gunicorn -k uvicorn.workers.UvicornWorker
django_project.asgi:application`` (with ``--preload``, imported once before the workers fork)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

import racefree.django  # noqa: E402

django_application = get_asgi_application()
# Opened at import, as apps often do: under --preload every worker inherits this store.
racefree.django.coordinator()
application = racefree.django.lifespan(django_application)
