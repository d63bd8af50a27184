"""Two states managing one app (overlapping shards, two state files against one endpoint):
what the API lets a file state detect. (The PostgreSQL store refuses the overlap outright:
tests/test_state_pg*.py.)"""

from __future__ import annotations

from tests.fixtures_pipeline import Mac
from tests.test_apply import APP, app


async def test_a_version_another_state_made_is_named_as_the_likely_cause(mac: Mac) -> None:
    _, first, _ = await mac.apply([app()])
    assert first.ok
    # Another state made the version: this state knows the app but not its version (what a
    # second shard's state looks like once the first shard created it).
    store = mac.store
    with store.lock("test"):
        state = mac.state()
        del state.apps[APP].versions["1.0.0"]
        store.save(state)
    _, result, _ = await mac.apply([app()])
    created = next(r for r in result.results if r.change.kind == "version")
    message = created.message or ""
    assert "refused as a duplicate code" in message
    assert "another state" in message and "one state" in message
    assert mac.sandbox.count_versions(APP) == 1
