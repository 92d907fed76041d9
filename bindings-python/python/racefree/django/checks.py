"""``manage.py check`` for ``RACEFREE``: nothing is opened, no server is needed."""

from typing import Any, List

from django.conf import settings as django_settings  # type: ignore[import-untyped]
from django.core import checks  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]

from racefree import _native
from racefree.errors import RacefreeError


@checks.register("racefree")  # type: ignore[untyped-decorator]
def check_settings(app_configs: Any = None, **_: Any) -> List[Any]:
    from racefree.django import SETTINGS, settings, store_url

    found: List[Any] = []
    given = getattr(django_settings, "RACEFREE", {})
    if not isinstance(given, dict):
        return [checks.Error("RACEFREE must be a dict", id="racefree.E001")]
    for key in sorted(set(given) - set(SETTINGS)):
        found.append(
            checks.Error(
                f"RACEFREE has an unknown key {key!r}",
                hint=f"the keys are {', '.join(SETTINGS)}",
                id="racefree.E001",
            )
        )
    config = settings()
    try:
        _native.check_url(store_url(config["STORE"]) if isinstance(config["STORE"], str) else config["STORE"])
    except (RacefreeError, TypeError, ImproperlyConfigured) as error:
        found.append(checks.Error(f"RACEFREE['STORE'] is not a store URL: {error}", id="racefree.E002"))
    try:
        _native.KeeperOptions(ttl=config["TASK_TTL"], renew_every=config["TASK_RENEW_EVERY"], max_hold=config["TASK_MAX_HOLD"])
    except (RacefreeError, TypeError) as error:
        found.append(checks.Error(f"RACEFREE task lease settings: {error}", id="racefree.E003"))
    if not isinstance(config["PROMETHEUS"], bool):
        found.append(checks.Error(f"RACEFREE['PROMETHEUS'] must be True or False, got {config['PROMETHEUS']!r}", id="racefree.E004"))
    elif config["PROMETHEUS"]:
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            found.append(
                checks.Error(
                    "RACEFREE['PROMETHEUS'] is True but prometheus_client is not installed",
                    hint="pip install racefree[prometheus]",
                    id="racefree.E004",
                )
            )
    store = config["STORE"]
    if isinstance(store, str) and store.startswith("memory:") and not django_settings.DEBUG:
        found.append(
            checks.Warning(
                "RACEFREE['STORE'] is memory://, which coordinates one process only",
                hint="a production server usually runs several worker processes: use sqlite:///… "
                "(one machine) or redis://… (many), or each process starts the same task",
                id="racefree.W001",
            )
        )
    return found
