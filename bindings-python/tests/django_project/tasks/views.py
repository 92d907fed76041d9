"""Views of the served test project: start a task on a key, ask whether a key is held. Each run
appends its own start and end (wall clock, microseconds) to RACEFREE_RUN_LOG."""

import asyncio
import os
import time

from django.http import HttpRequest, JsonResponse

import racefree.asyncio
import racefree.django


def _log(line: str) -> None:
    path = os.environ.get("RACEFREE_RUN_LOG")
    if path:
        with open(path, "a") as log:  # one short append per line: lines never interleave
            log.write(line + "\n")


async def run(request: HttpRequest, key: str) -> JsonResponse:
    """Starts a task on ``key`` that runs ``?seconds=`` (default 0.2) unless ``key`` runs anywhere."""
    seconds = float(request.GET.get("seconds", "0.2"))
    pid = os.getpid()

    async def task() -> None:
        token = racefree.asyncio.current_lease().token
        _log(f"start {key} {pid} {token} {time.time_ns() // 1000}")
        try:
            await asyncio.sleep(seconds)
        finally:
            _log(f"end {key} {pid} {token} {time.time_ns() // 1000}")

    started = await (await racefree.django.acoordinator()).start(key, task)
    return JsonResponse({"started": started, "pid": pid})


async def held(request: HttpRequest, key: str) -> JsonResponse:
    coordinator = await racefree.django.acoordinator()
    return JsonResponse({"held": await coordinator.is_running(key), "pid": os.getpid()})
