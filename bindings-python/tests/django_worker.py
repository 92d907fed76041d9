"""One Django worker process for test_django_processes.py: once Django is set up it says READY,
then starts the task when the go-file appears (a barrier across processes)."""

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
    pk, go = int(sys.argv[1]), sys.argv[2]
    print("READY", flush=True)
    while not os.path.exists(go):
        time.sleep(0.0005)
    print("STARTED" if async_to_sync(start_and_wait)(pk) else "REFUSED", flush=True)
