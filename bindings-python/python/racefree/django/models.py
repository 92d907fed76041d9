"""No tables: one unmanaged model that gives the admin its page and its two permissions.

``racefree.view_store`` lets staff see the store (leases, counters, streams, records, and this
process's metrics); ``racefree.release_lease`` also lets them release a stuck lease and sweep.
"""

from django.db import models  # type: ignore[import-untyped]


class Store(models.Model):  # type: ignore[misc]
    """The configured store, as the admin shows it (read from the store; never a table)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_store", "Can see racefree's store"),
            ("release_lease", "Can release a racefree lease and sweep the store"),
        ]
        verbose_name = "store"
        verbose_name_plural = "store"
