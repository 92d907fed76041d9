"""The ``racefree.django`` app: system checks, the ``racefree`` management command, and the
store and coordinator forgotten whenever ``RACEFREE`` changes (``override_settings`` in tests)."""

from typing import Any

from django.apps import AppConfig  # type: ignore[import-untyped]
from django.core.signals import setting_changed  # type: ignore[import-untyped]


def _forget_on_change(*, setting: str, **_: Any) -> None:
    if setting == "RACEFREE":
        from racefree.django import reset

        reset()


class RacefreeConfig(AppConfig):  # type: ignore[misc]
    name = "racefree.django"
    label = "racefree"
    verbose_name = "racefree"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from racefree.django import checks  # noqa: F401  (registers the checks)

        setting_changed.connect(_forget_on_change, dispatch_uid="racefree-settings")
        from racefree.django import settings

        if settings()["PROMETHEUS"] is True:
            register_prometheus()


_registered = False


def register_prometheus() -> None:
    """Registers racefree's collector with ``prometheus_client``'s default registry, once per
    process (a second ``ready()``, as in tests, does not register it twice)."""
    global _registered
    if _registered:
        return
    from prometheus_client import REGISTRY

    from racefree.metrics import PrometheusCollector

    REGISTRY.register(PrometheusCollector())
    _registered = True
