"""The coordinator in a real Django project: settings, an app, a model with an async process()."""

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync

import racefree.django
from django_project.tasks.coordinators import NaiveCoordinator, start_task
from django_project.tasks.models import ExampleTask

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_coordinator():
    racefree.django.reset()
    yield
    racefree.django.reset()


@pytest.fixture(params=["memory", "redis"])
def backend(request, settings):
    """The coordinator's store, from Django settings: in-process memory, or a Redis server."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        settings.RACEFREE = {**settings.RACEFREE, "STORE": url}
    racefree.django.reset()
    return request.param


@pytest.fixture
def task():
    return ExampleTask.objects.create(message="hello")


def test_configured_from_settings(backend):
    store = racefree.django.store()
    assert store.is_local == (backend == "memory")
    assert (store.namespace == "") == (backend == "memory")
    assert racefree.django.coordinator() is racefree.django.coordinator()


def test_hundred_concurrent_starts(task, backend):
    async def scenario():
        started = await asyncio.gather(*(start_task(task.pk) for _ in range(100)))
        await racefree.django.coordinator().wait(task.coordinator_key)
        return started

    started = async_to_sync(scenario)()
    assert started.count(True) == 1 and started.count(False) == 99
    task.refresh_from_db()
    assert (task.status, task.runs) == ("done", 1)

    # Restart after completion; afterwards nothing is left behind for the key.
    async def restart():
        ok = await start_task(task.pk)
        await racefree.django.coordinator().wait(task.coordinator_key)
        return ok

    assert async_to_sync(restart)()
    task.refresh_from_db()
    assert task.runs == 2
    assert racefree.django.coordinator().running() == []
    assert racefree.django.store().stats()["entries"] == 0


def test_naive_coordinator_starts_duplicates_in_one_loop(task):
    naive = NaiveCoordinator()

    async def scenario():
        started = await asyncio.gather(*(naive.start_task(task.pk) for _ in range(100)))
        await asyncio.gather(*naive.tasks.values())
        return started

    started = async_to_sync(scenario)()
    assert started.count(True) > 1, "the naive coordinator was expected to start duplicates"
    task.refresh_from_db()
    assert task.runs > 1


def race_from_threads(start_and_wait, pk):
    """Eight sync views (each its own thread, through async_to_sync) start the same task at once.

    The barrier is crossed inside each view's event loop, so all eight reach the start together
    rather than staggered by how long each thread takes to set its loop up.
    """
    barrier = threading.Barrier(8)
    results = []

    async def lined_up(pk):
        barrier.wait()  # blocks only this view's own loop, briefly
        return await start_and_wait(pk)

    def view():
        results.append(async_to_sync(lined_up)(pk))

    threads = [threading.Thread(target=view) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_eight_threads_racefree(task, backend):
    async def start_and_wait(pk):
        started = await start_task(pk)
        await racefree.django.coordinator().wait(f"tasks.ExampleTask:{pk}")
        return started

    results = race_from_threads(start_and_wait, task.pk)
    assert results.count(True) == 1 and results.count(False) == 7
    task.refresh_from_db()
    assert task.runs == 1
    assert racefree.django.store().stats()["entries"] == 0


def test_eight_threads_naive_starts_duplicates(task):
    naive = NaiveCoordinator()

    async def start_and_wait(pk):
        started = await naive.start_task(pk)
        if started:
            await naive.tasks[f"tasks.ExampleTask:{pk}"]
        return started

    results = race_from_threads(start_and_wait, task.pk)
    assert results.count(True) > 1, "the naive coordinator was expected to start duplicates"
    task.refresh_from_db()
    assert task.runs == results.count(True)


def test_the_original_coordinators_form_runs_process_once_per_key(backend, task):
    assert racefree.django.get_task_key("tasks", "ExampleTask", task.pk) == task.coordinator_key

    async def start_twice_and_wait():
        first = await racefree.django.start_task(task, "tasks", "ExampleTask")
        second = await racefree.django.start_task(task, "tasks", "ExampleTask")
        await racefree.django.coordinator().wait(task.coordinator_key)
        return first, second

    assert async_to_sync(start_twice_and_wait)() == (True, False)
    task.refresh_from_db()
    assert (task.runs, task.status) == (1, "done")
