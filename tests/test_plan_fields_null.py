"""A saved plan's field change whose null side is absent reads back as null: providers'
checked models dump without nulls, and an Akana saved plan whose field `before` was null
crashed with KeyError (found by the saved-plan mutation test)."""

from __future__ import annotations

from reconciler.engine.plan import Change, FieldChange


def test_a_field_change_without_its_null_side_reads_as_null() -> None:
    data = {
        "address": "akana_app[Payments Gateway]",
        "kind": "akana_app",
        "action": "update",
        "app_id": "Payments Gateway",
        "fields": [{"path": "summary", "after": "Cards"}, {"path": "website", "before": "x"}],
    }
    change = Change.from_dict(data, {"akana_app": "akana"})
    assert change.fields == (
        FieldChange("summary", None, "Cards"),
        FieldChange("website", "x", None),
    )
