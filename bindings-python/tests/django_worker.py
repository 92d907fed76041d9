"""One Django worker process for test_django_processes.py: starts the task at an agreed moment."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")

import django  # noqa: E402

django.setup()

from asgiref.sync import async_to_sync  # noqa: E402

import racefree.django  # noqa: E402
from django_project.tasks.coordinators import start_task  # noqa: E402


async def start_and_wait(pk: int) -> bool:
    started = await start_task(pk)
    await racefree.django.coordinator().wait(f"tasks.ExampleTask:{pk}")
    return started


if __name__ == "__main__":
    pk, start_at = int(sys.argv[1]), float(sys.argv[2])
    while time.time() < start_at:
        time.sleep(0.0005)
    print("STARTED" if async_to_sync(start_and_wait)(pk) else "REFUSED", flush=True)
