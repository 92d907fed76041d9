"""``manage.py racefree inspect | sweep | release <key> [--force]``: the operator's view of the
store configured in ``RACEFREE``."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser  # type: ignore[import-untyped]

from racefree import _native
from racefree.django import _seconds_left
from racefree.errors import NotOwner, RacefreeError


class Command(BaseCommand):  # type: ignore[misc]
    help = "Inspect racefree's store, sweep expired entries, or free a stuck key."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("inspect", help="counters, leases (token and time left), streams, records")
        actions.add_parser("sweep", help="remove expired leases and marks now")
        release = actions.add_parser("release", help="free a key whose task is stuck")
        release.add_argument("key")
        release.add_argument("--lock", default=None, help="the lock's name (default: RACEFREE['TASK_LOCK'])")
        release.add_argument("--force", action="store_true", help="release it (without: only show who holds it)")

    def handle(self, *args: Any, **options: Any) -> None:
        from racefree.django import settings, store

        try:
            opened = store()
            if options["action"] == "inspect":
                self._inspect(opened)
            elif options["action"] == "sweep":
                self.stdout.write(f"swept {opened.sweep()} expired entries")
            else:
                self._release(opened, options["lock"] or settings()["TASK_LOCK"], options["key"], options["force"])
        except RacefreeError as error:
            raise CommandError(str(error)) from error

    def _inspect(self, opened: _native.Store) -> None:
        found, now = opened.inspect(), opened.now_ms()
        self.stdout.write(f"namespace {opened.namespace!r}")
        for c in found["counters"]:
            self.stdout.write(f"counter {c['counter']}: next {c['next']}, {c['claims']} claims")
        for lease in found["leases"]:
            left = _seconds_left(lease["deadline_ms"], now)
            self.stdout.write(f"lease {lease['lock']}/{lease['key']}: token {lease['token']}, {left} left")
        for s in found["streams"]:
            self.stdout.write(f"stream {s['guard']}/{s['stream']}: {s['marked']} events marked")
        for r in found["records"]:
            self.stdout.write(f"record {r['space']}/{r['key']}: version {r['version']}")

    def _release(self, opened: _native.Store, lock_name: str, key: str, force: bool) -> None:
        lock = _native.StartLock(opened, lock_name)
        holder = lock.holder(key)
        if holder is None:
            raise CommandError(f"{lock_name}/{key} is not held")
        token, deadline_ms = holder
        held = f"{lock_name}/{key} is held by token {token}, {_seconds_left(deadline_ms, opened.now_ms())} left"
        if not force:
            raise CommandError(f"{held}; add --force to release it (its task may still be running)")
        try:
            lock.release_token(key, token)
        except NotOwner as error:
            raise CommandError(f"{held}, but it changed hands meanwhile: {error}") from error
        self.stdout.write(f"released: {held}")
