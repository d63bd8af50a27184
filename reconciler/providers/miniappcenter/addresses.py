"""The Mini App Center's resource addresses, built from structured fields (never by hand)."""

from __future__ import annotations

from reconciler.address import Address
from reconciler.providers.miniappcenter.vocabulary import PROVIDER


def app_address(app_id: str) -> Address:
    return Address(PROVIDER, "miniapp", app_id)


def attribute_address(app_id: str, field_name: str) -> Address:
    return app_address(app_id).child("attribute", field_name)


def location_address(app_id: str, name: str) -> Address:
    return app_address(app_id).child("location", name)


def locations_address(app_id: str) -> Address:
    """The app's whole location list (fingerprinted as one read: the API lists them)."""
    return app_address(app_id).child("locations", "*")


def version_address(app_id: str, code: str) -> Address:
    return app_address(app_id).child("version", code)


def compatibility_address(app_id: str, code: str, superapp_version: int) -> Address:
    return version_address(app_id, code).child("compatibility", str(superapp_version))


def status_address(app_id: str, code: str, step: str) -> Address:
    """A review status step; ``step`` LEARN_STATUS names learning an unknown status."""
    return version_address(app_id, code).child("status", step)
