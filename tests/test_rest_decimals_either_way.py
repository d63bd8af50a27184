"""A decimal written as a plain number converges after one apply whether the server answers
it as a fixed-point string (Django REST framework's DecimalField, the tenant sandbox's
default) or as the number sent (`--drop-assumption fixed-point-decimals`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.providers.rest.apply import apply_plan
from reconciler.state import ProviderState
from tests.test_rest_provider_apply import _app, _clients, _plan, _product


@pytest.mark.parametrize("fixed_point", [True, False], ids=["fixed-point", "as-sent"])
async def test_a_decimal_converges_after_one_apply(tmp_path: Path, fixed_point: bool) -> None:
    app = _app(tmp_path, fixed_point_decimals=fixed_point)
    desired = [_product(12, price=12.5)]
    section = ProviderState()
    async with _clients(app) as clients:
        first = await _plan(clients, desired, section)
        results = await apply_plan(clients, first, section)
        assert [r.message for r in results if not r.ok] == []
        (live,) = await clients["shop"].list_objects("/api/products/")
        again = await _plan(clients, desired, section)
    assert live["price"] == ("12.50" if fixed_point else 12.5)
    assert again.changes == () and not again.errors
