"""The version review state machine and compatibility idempotence, in process (ASGITransport)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from reconciler.providers.miniappcenter.sandbox import SandboxStore
from reconciler.providers.miniappcenter.sandbox.errors import ErrorCode
from tests.fixtures_sandbox import TEST_TOKEN

APP_ID = "com.genexus.verdant.coffeemuffins"
STATUSES = ["pending", "waiting_for_review", "in_review", "rejected", "ready"]
STEPS = ["send_to_review", "in_review", "rejected", "ready"]
# The oracle, written out independently of the implementation's table.
ALLOWED = {
    ("pending", "send_to_review"): "waiting_for_review",
    ("waiting_for_review", "in_review"): "in_review",
    ("in_review", "ready"): "ready",
    ("in_review", "rejected"): "rejected",
    ("rejected", "send_to_review"): "waiting_for_review",
}
# How to reach each status from a new (pending) version.
PATH_TO = {
    "pending": [],
    "waiting_for_review": ["send_to_review"],
    "in_review": ["send_to_review", "in_review"],
    "rejected": ["send_to_review", "in_review", "rejected"],
    "ready": ["send_to_review", "in_review", "ready"],
}


@pytest.fixture
async def client(sandbox_asgi_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox_asgi_app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://sandbox.test/api/v1",
        headers={"APIKey-Auth": TEST_TOKEN},
    ) as c:
        response = await c.post(
            "/miniapps",
            json={"id": APP_ID, "name": "C", "superapp_id": "com.genexus.bank", "type": "Native"},
        )
        assert response.status_code == 201
        yield c


@pytest.fixture
def store(sandbox_asgi_app: Starlette) -> SandboxStore:
    result: SandboxStore = sandbox_asgi_app.state.store
    return result


async def new_version(client: httpx.AsyncClient) -> int:
    response = await client.post(
        f"/miniapps/{APP_ID}/versions",
        json={"platform_id": "iOS", "main_name": "start", "main_type": "Panel"},
    )
    assert response.status_code == 201
    version_id: int = response.json()["data"]["id"]
    return version_id


async def step(client: httpx.AsyncClient, version_id: int, name: str) -> httpx.Response:
    return await client.post(f"/miniapps/{APP_ID}/versions/{version_id}/{name}")


def test_the_table_is_complete() -> None:
    assert len(STATUSES) * len(STEPS) == 20
    assert set(PATH_TO) == set(STATUSES)


async def test_new_versions_start_pending(client: httpx.AsyncClient, store: SandboxStore) -> None:
    version_id = await new_version(client)
    assert store.version_status(APP_ID, version_id) == "pending"
    data = (await client.get(f"/miniapps/{APP_ID}/versions/{version_id}")).json()["data"]
    assert "status" not in data  # kept server-side only, as in the docs


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("step_name", STEPS)
async def test_every_step_from_every_status(
    client: httpx.AsyncClient, store: SandboxStore, status: str, step_name: str
) -> None:
    version_id = await new_version(client)
    for previous in PATH_TO[status]:
        assert (await step(client, version_id, previous)).status_code == 204
    assert store.version_status(APP_ID, version_id) == status

    response = await step(client, version_id, step_name)

    expected = ALLOWED.get((status, step_name))
    if expected is not None:
        assert response.status_code == 204
        assert response.content == b""
        assert store.version_status(APP_ID, version_id) == expected
    else:
        assert response.status_code == 400
        [error] = response.json()["errors"]
        assert error["code"] == ErrorCode.INVALID_STATUS_STEP
        assert status in error["message"] and step_name in error["message"]
        assert store.version_status(APP_ID, version_id) == status  # unchanged


async def test_rejected_version_goes_round_again(
    client: httpx.AsyncClient, store: SandboxStore
) -> None:
    version_id = await new_version(client)
    for name in ["send_to_review", "in_review", "rejected", "send_to_review", "in_review", "ready"]:
        assert (await step(client, version_id, name)).status_code == 204
    assert store.version_status(APP_ID, version_id) == "ready"


async def test_steps_of_one_version_leave_others_alone(
    client: httpx.AsyncClient, store: SandboxStore
) -> None:
    first, second = await new_version(client), await new_version(client)
    assert (await step(client, first, "send_to_review")).status_code == 204
    assert store.version_status(APP_ID, first) == "waiting_for_review"
    assert store.version_status(APP_ID, second) == "pending"


async def test_compatibility_is_idempotent(client: httpx.AsyncClient, store: SandboxStore) -> None:
    version_id = await new_version(client)
    add = f"/miniapps/{APP_ID}/versions/{version_id}/compatibility"
    delete = add + "/delete"

    for _ in range(2):
        response = await client.post(add, json={"superapp_version": 1})
        assert response.status_code == 204 and response.content == b""
    assert store.compatibilities(APP_ID, version_id) == {1}
    assert (await client.post(add, json={"superapp_version": 2})).status_code == 204
    assert store.compatibilities(APP_ID, version_id) == {1, 2}

    for _ in range(2):
        response = await client.post(delete, json={"superapp_version": 1})
        assert response.status_code == 204 and response.content == b""
    assert store.compatibilities(APP_ID, version_id) == {2}
    # Deleting one that was never there is also "already in that state".
    assert (await client.post(delete, json={"superapp_version": 99})).status_code == 204
    assert store.compatibilities(APP_ID, version_id) == {2}


async def test_compatibility_does_not_depend_on_status(
    client: httpx.AsyncClient, store: SandboxStore
) -> None:
    version_id = await new_version(client)
    for name in PATH_TO["ready"]:
        await step(client, version_id, name)
    add = f"/miniapps/{APP_ID}/versions/{version_id}/compatibility"
    assert (await client.post(add, json={"superapp_version": 5})).status_code == 204
    assert store.compatibilities(APP_ID, version_id) == {5}
    assert store.version_status(APP_ID, version_id) == "ready"
