"""The Django admin's page for racefree: what the configured store holds — held leases (lock,
key, token, time left), counters, guarded streams, records — and this process's metrics, read
from the store on each visit (racefree keeps no tables of its own). Staff with
``racefree.release_lease`` can release a stuck lease, after a confirmation page naming its token,
and sweep expired entries.
"""

from typing import Any, Dict, List, Optional

from django.contrib import admin, messages  # type: ignore[import-untyped]
from django.core.exceptions import PermissionDenied  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect  # type: ignore[import-untyped]
from django.template.response import TemplateResponse  # type: ignore[import-untyped]
from django.urls import path, reverse  # type: ignore[import-untyped]

from racefree import _native
from racefree.django import _seconds_left
from racefree.django.models import Store
from racefree.errors import NotOwner, RacefreeError

VIEW, RELEASE = "racefree.view_store", "racefree.release_lease"


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):  # type: ignore[misc]
    """One page instead of a change list: the store's inventory, and the release and sweep actions."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff and request.user.has_perm(VIEW))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> List[Any]:
        view = self.admin_site.admin_view
        return [
            path("", view(self.store_view), name="racefree_store_changelist"),
            path("release/", view(self.release_view), name="racefree_store_release"),
            path("sweep/", view(self.sweep_view), name="racefree_store_sweep"),
        ]

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> Dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "can_release": request.user.has_perm(RELEASE),
            **extra,
        }

    def _require(self, request: HttpRequest, permission: str) -> None:
        if not self.has_view_permission(request) or not request.user.has_perm(permission):
            raise PermissionDenied

    def store_view(self, request: HttpRequest) -> HttpResponse:
        from racefree.django import store
        from racefree.metrics import Histogram, samples

        self._require(request, VIEW)
        error: Optional[str] = None
        inventory: Dict[str, Any] = {"counters": [], "leases": [], "streams": [], "records": []}
        namespace = ""
        try:
            opened = store()
            namespace = opened.namespace
            inventory, now = dict(opened.inspect()), opened.now_ms()
            for lease in inventory["leases"]:
                lease["left"] = _seconds_left(lease["deadline_ms"], now)
        except RacefreeError as failure:
            error = f"{failure.code}: {failure}"
        counts = [
            {"name": s.name, "labels": ", ".join(f"{k}={v}" for k, v in s.labels.items()), "value": s.value}
            for s in samples()
            if not isinstance(s.value, Histogram) and s.value
        ]
        return TemplateResponse(
            request,
            "racefree/admin/store.html",
            self._context(request, "racefree store", namespace=namespace, error=error, counts=counts, **inventory),
        )

    def release_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the confirmation page, naming the lease's token. POST: releases that token's
        lease (only that one: a lease granted since, with a newer token, stays)."""
        from racefree.django import store

        self._require(request, RELEASE)
        source = request.POST if request.method == "POST" else request.GET
        lock_name, key, token_text = source.get("lock", ""), source.get("key", ""), source.get("token", "")
        back = HttpResponseRedirect(reverse("admin:racefree_store_changelist"))
        try:
            token = int(token_text)
            lock = _native.StartLock(store(), lock_name)
        except (ValueError, RacefreeError) as error:
            messages.error(request, f"not a lease: {error}")
            return back
        if request.method != "POST":
            return TemplateResponse(
                request,
                "racefree/admin/release.html",
                self._context(request, "Release a lease", lock=lock_name, key=key, token=token),
            )
        try:
            lock.release_token(key, token)
        except NotOwner:
            messages.warning(request, f"{lock_name}/{key}: token {token} no longer holds it; nothing released")
        except RacefreeError as error:
            messages.error(request, f"{lock_name}/{key}: {error.code}: {error}")
        else:
            messages.success(request, f"released {lock_name}/{key} (token {token}): the key can start again")
        return back

    def sweep_view(self, request: HttpRequest) -> HttpResponse:
        from racefree.django import store

        self._require(request, RELEASE)
        if request.method == "POST":
            try:
                messages.success(request, f"swept {store().sweep()} expired entries")
            except RacefreeError as error:
                messages.error(request, f"sweep failed: {error.code}: {error}")
        return HttpResponseRedirect(reverse("admin:racefree_store_changelist"))
