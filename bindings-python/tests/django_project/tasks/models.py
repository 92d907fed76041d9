import asyncio

from django.db import models


class ExampleTask(models.Model):
    message = models.CharField(max_length=200)
    status = models.CharField(max_length=20, default="pending")
    runs = models.IntegerField(default=0)

    @property
    def coordinator_key(self) -> str:
        return f"tasks.ExampleTask:{self.pk}"

    async def process(self) -> None:
        """The long-running work: counts its runs, so a duplicate start shows in the database."""
        await ExampleTask.objects.filter(pk=self.pk).aupdate(status="running", runs=models.F("runs") + 1)
        await asyncio.sleep(0.05)
        await ExampleTask.objects.filter(pk=self.pk).aupdate(status="done")
