"""racefree.django as an installed app: system checks, `manage.py racefree`, settings changes,
the store opened off the event loop with a failed open remembered, and shutdown via lifespan."""

import asyncio
import os
import signal
import time

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError

import racefree
import racefree.django
from conftest import _free_port, start_redis
from racefree.asyncio import TaskCoordinator


def check_ids(**racefree_settings):
    from django.conf import settings

    settings.RACEFREE = racefree_settings
    return sorted(message.id for message in checks.run_checks(tags=["racefree"]))


def test_checks_report_unknown_keys_bad_urls_bad_leases_and_memory_in_production(settings, tmp_path):
    settings.DEBUG = False
    sqlite = f"sqlite://{tmp_path / 'x.db'}"
    assert check_ids(STORE=sqlite) == []
    assert check_ids(STORE=sqlite, TTL=2) == ["racefree.E001"], "a misspelt key is reported"
    assert check_ids(STORE="nope") == ["racefree.E002"]
    assert check_ids(STORE="redis://127.0.0.1:1/0?timeout_ms=0") == ["racefree.E002"]
    assert check_ids(STORE="redis://127.0.0.1:1/0") == [], "checked without connecting"
    assert not (tmp_path / "x.db").exists(), "checked without opening"
    for bad in ({"TASK_TTL": 0}, {"TASK_TTL": 1, "TASK_RENEW_EVERY": 2}, {"TASK_TTL": 1, "TASK_MAX_HOLD": 0.5}):
        assert check_ids(STORE=sqlite, **bad) == ["racefree.E003"], bad
    assert check_ids() == ["racefree.W001"], "memory:// with DEBUG = False"
    settings.DEBUG = True
    assert check_ids() == []


def test_the_prometheus_setting_registers_the_collector_once(settings):
    from django.apps import apps
    from prometheus_client import REGISTRY, generate_latest

    settings.DEBUG = True
    assert check_ids(PROMETHEUS="yes") == ["racefree.E004"]
    assert check_ids(PROMETHEUS=True) == []
    config = apps.get_app_config("racefree")
    config.ready()
    config.ready()  # a second ready() (tests, reloads) registers nothing more
    racefree.StartLock(racefree.open("memory://"), "django-prometheus").try_start("k", ttl=30)
    text = generate_latest(REGISTRY).decode()
    assert text.count("# TYPE racefree_starts_total counter") == 1
    assert 'name="django-prometheus"' in text


def test_manage_py_check_fails_on_an_error(settings):
    settings.RACEFREE = {"STORE": "memory://", "TTL": 2}
    with pytest.raises(Exception, match="racefree.E001"):
        call_command("check")


def test_settings_changes_are_honoured(settings):
    settings.RACEFREE = {"STORE": "memory://?namespace=first"}
    assert racefree.django.store().namespace == "first"
    settings.RACEFREE = {"STORE": "memory://?namespace=second"}
    assert racefree.django.store().namespace == "second"


def test_a_failed_open_is_raised_on_every_call_and_retried_after_a_back_off(settings, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(racefree.django, "_now", lambda: now[0])
    opened = []
    real_open = racefree.django._native.open
    monkeypatch.setattr(racefree.django._native, "open", lambda url: opened.append(url) or real_open(url))
    settings.RACEFREE = {"STORE": f"redis://127.0.0.1:{_free_port()}/0?timeout_ms=300"}
    for _ in range(5):
        with pytest.raises(racefree.BackendUnavailable):
            racefree.django.coordinator()
    assert len(opened) == 1, "retried before the back-off"
    now[0] += 0.6
    with pytest.raises(racefree.BackendUnavailable):
        racefree.django.coordinator()
    assert len(opened) == 2
    now[0] += 0.6  # the back-off doubled to 1 s
    with pytest.raises(racefree.BackendUnavailable):
        racefree.django.coordinator()
    assert len(opened) == 2


async def test_acoordinator_opens_the_store_off_the_event_loop(settings, tmp_path):
    port = _free_port()
    server = start_redis(port, str(tmp_path), "--appendonly", "no")
    os.kill(server.pid, signal.SIGSTOP)  # connects, then never answers
    try:
        settings.RACEFREE = {"STORE": f"redis://127.0.0.1:{port}/0?timeout_ms=1000"}
        loop = asyncio.get_running_loop()
        gaps = []

        async def ticker():
            last = loop.time()
            while True:
                await asyncio.sleep(0.01)
                gaps.append(loop.time() - last)
                last = loop.time()

        ticking = asyncio.create_task(ticker())
        began = loop.time()
        with pytest.raises(racefree.Timeout):
            await racefree.django.acoordinator()
        took = loop.time() - began
        ticking.cancel()
        assert took >= 0.9, f"the open took {took:.2f}s, not the server's timeout"
        assert gaps and max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.2f}s"
    finally:
        os.kill(server.pid, signal.SIGCONT)
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def test_manage_py_racefree_inspect_sweep_and_release(settings, tmp_path, capsys):
    settings.RACEFREE = {"STORE": f"sqlite://{tmp_path / 'ops.db'}"}
    lock = racefree.StartLock(racefree.django.store(), "tasks")
    lease = lock.try_start("stuck", ttl=60)
    call_command("racefree", "inspect")
    assert f"lease tasks/stuck: token {lease.token}" in capsys.readouterr().out
    with pytest.raises(CommandError, match=f"held by token {lease.token}, .* left; add --force"):
        call_command("racefree", "release", "stuck")
    assert lock.is_held("stuck"), "released without --force"
    call_command("racefree", "release", "stuck", "--force")
    assert "released: tasks/stuck is held by token" in capsys.readouterr().out
    assert not lock.is_held("stuck")
    with pytest.raises(CommandError, match="is not held"):
        call_command("racefree", "release", "stuck", "--force")
    call_command("racefree", "sweep")
    assert "swept 0 expired entries" in capsys.readouterr().out


async def test_aclose_cancels_every_task_and_releases_its_key_then_refuses_starts(store):
    coordinator = TaskCoordinator(store, ttl=30)
    cancelled = []

    async def forever(name):
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    for name in ("a", "b", "c"):
        assert await coordinator.start(name, lambda name=name: forever(name))
    await asyncio.sleep(0)
    await coordinator.aclose(timeout=5)
    assert sorted(cancelled) == ["a", "b", "c"]
    assert store.stats()["entries"] == 0, "a key stayed held"
    with pytest.raises(RuntimeError, match="closed"):
        await coordinator.start("d", lambda: forever("d"))


async def test_aclose_says_when_a_task_will_not_stop_in_time(store):
    coordinator = TaskCoordinator(store, ttl=30)

    async def stubborn():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(2)  # cleans up for longer than the shutdown allows

    assert await coordinator.start("k", stubborn)
    await asyncio.sleep(0)
    with pytest.raises(racefree.Timeout):
        await coordinator.aclose(timeout=0.1)
    await coordinator.wait("k")


async def test_the_lifespan_shutdown_releases_the_keys_of_running_tasks(settings):
    settings.RACEFREE = {"STORE": "memory://"}
    coordinator = await racefree.django.acoordinator()

    async def forever():
        await asyncio.sleep(3600)

    assert await coordinator.start("k", forever)
    app = racefree.django.lifespan(lambda scope, receive, send: None)
    inbox = asyncio.Queue()
    for message in ({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}):
        inbox.put_nowait(message)
    sent = []

    async def send(message):
        sent.append(message["type"])

    await app({"type": "lifespan"}, inbox.get, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not await coordinator.is_running("k")
