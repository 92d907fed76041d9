"""How the app starts ExampleTask processing: the racefree coordinator, and the naive one it replaced."""

import asyncio
from typing import Dict

from racefree.django import coordinator

from .models import ExampleTask


async def start_task(pk: int) -> bool:
    """Starts processing task ``pk`` unless it already runs (in any thread, loop or process)."""
    task = await ExampleTask.objects.aget(pk=pk)
    return await coordinator().start(task.coordinator_key, task.process)


class NaiveCoordinator:
    """The hand-rolled version: ``if key not in tasks: tasks[key] = create_task(...)``.

    The model is loaded between the check and the act, as the original view did; that await is
    the window in which a second starter slips through.
    """

    def __init__(self) -> None:
        self.tasks: Dict[str, "asyncio.Task[None]"] = {}

    async def start_task(self, pk: int) -> bool:
        key = f"tasks.ExampleTask:{pk}"
        if key in self.tasks and not self.tasks[key].done():
            return False
        task = await ExampleTask.objects.aget(pk=pk)
        self.tasks[key] = asyncio.get_running_loop().create_task(task.process())
        return True
