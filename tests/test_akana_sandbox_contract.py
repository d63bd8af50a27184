"""Contract tests of the Akana sandbox over real loopback HTTP with plain httpx.

The docs' sample bodies are the cases (akana-post-api-apps.txt, akana-get-api-apps.txt);
statuses as the docs give them: 401 without cookie or CSRF, 404 for a wrong Accept, media
type or verb, 200 ``text/plain`` AppID for a create, ``Atmo-Renew-Token: renew``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from tests.fixtures_akana import (
    EMAIL,
    FED,
    PASSWORD,
    PENDING_EMAIL,
    PENDING_PASSWORD,
    VND,
    RunningAkana,
    SettableClock,
)

ID_RE = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\.acmepaymentscorp$")
SESSION = f"AtmoAuthToken_{FED}"
CSRF = f"Csrf-Token_{FED}"
CSRF_HEADER = f"X-Csrf-Token_{FED}"

# Sample request body #1 of POST /api/apps, verbatim.
DOCS_CREATE_1 = """{
  "Name":"Crosfhocal",
  "Summary":"Crossword puzzle app",
  "Description":"Crossword puzzle app for Android phones and iPhones",
  "ApplicationVersion":{
    "Name":"1.0",
    "Description":"Initial version",
    "Tag":[
      "puzzle",
      "language",
      "learning",
      "iPhone",
      "Android"
    ],
    "Visibility":"Public",
    "Identity":"",
    "SharedSecret":"",
    "WebsiteAddress":"http://www.acmepaymentscorp.com/crosfhocal"
  },
  "PictureID":""
}"""
# Sample request body #3: in the context of a business organization.
BUSINESS = "8c7d0ba1-b73f-41ee-9144-b5a90173382d.acmepaymentscorp"
DOCS_CREATE_3 = """{
  "Name":"Billing App 2",
  "Summary":"Crossword puzzle app",
  "Description":"Billing App 2",
  "ApplicationVersion":{
    "Name":"v1",
    "Description":"v1",
    "Tag":[

    ],
    "Visibility":"Public",
    "Identity":"",
    "SharedSecret":"",
    "WebsiteAddress":""
  },
  "PictureID":"",
  "BusinessID":"8c7d0ba1-b73f-41ee-9144-b5a90173382d.acmepaymentscorp"
}"""


def csrf_headers(client: httpx.Client, **extra: str) -> dict[str, str]:
    return {CSRF_HEADER: client.cookies[CSRF], **extra}


def create(client: httpx.Client, body: str = DOCS_CREATE_1, **headers: str) -> httpx.Response:
    sent = {"Content-Type": "application/json; charset=UTF-8", "Accept": "*/*", **headers}
    if CSRF in client.cookies:
        sent.setdefault(CSRF_HEADER, client.cookies[CSRF])
    return client.post("/api/apps", content=body, headers=sent)


def app_body(name: str, version: str = "1.0", **fields: Any) -> dict[str, Any]:
    return {"Name": name, "ApplicationVersion": {"Name": version}, **fields}


def created_id(client: httpx.Client, body: str = DOCS_CREATE_1) -> str:
    response = create(client, body)
    assert response.status_code == 200, response.text
    return response.text


# --- login -------------------------------------------------------------------------------


def test_login_sets_the_session_and_csrf_cookies(akana: RunningAkana) -> None:
    with akana.http() as client:
        response = client.post("/api/login", json={"email": EMAIL, "password": PASSWORD})
        assert response.status_code == 200
        assert response.json()["LoginStatus"] == "Success"
        cookies = response.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith(SESSION + "="))
        assert "Max-Age=1800" in session and "HttpOnly" in session
        assert client.cookies[SESSION].startswith("TokenID%3D")
        assert client.cookies[CSRF].startswith("TokenID%3D")
    assert akana.store.count("login") == 1


@pytest.mark.parametrize(
    "body",
    [{"email": EMAIL, "password": "wrong"}, {"email": "nobody@x.example", "password": PASSWORD}],
)
def test_a_wrong_login_is_401_without_cookies(akana: RunningAkana, body: dict[str, str]) -> None:
    with akana.http() as client:
        response = client.post("/api/login", json=body)
        assert response.status_code == 401
        assert not response.headers.get_list("set-cookie")


def test_a_pending_task_answers_instead_of_a_session(akana: RunningAkana) -> None:
    with akana.http() as client:
        response = client.post(
            "/api/login", json={"email": PENDING_EMAIL, "password": PENDING_PASSWORD}
        )
        assert response.status_code == 200
        assert response.json()["PendingTask"] == "ChangePassword"
        assert not response.headers.get_list("set-cookie")
        assert client.get("/api/apps", headers={"Accept": VND}).status_code == 401


def test_login_needs_a_json_body(akana: RunningAkana) -> None:
    with akana.http() as client:
        form = client.post("/api/login", data={"email": EMAIL, "password": PASSWORD})
        assert form.status_code == 404  # a wrong media type
        assert client.post("/api/login", json={"email": EMAIL}).status_code == 400


# --- session and CSRF --------------------------------------------------------------------


def test_no_cookie_is_401(akana: RunningAkana) -> None:
    with akana.http() as client:
        assert client.get("/api/apps", headers={"Accept": VND}).status_code == 401
        assert create(client).status_code == 401


def test_reads_need_no_csrf_but_writes_do(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        assert client.get("/api/apps", headers={"Accept": VND}).status_code == 200
        no_header = client.post(
            "/api/apps",
            content=DOCS_CREATE_1,
            headers={"Content-Type": "application/json", "Accept": "*/*"},
        )
        assert no_header.status_code == 401
        stale = create(client, **{CSRF_HEADER: "TokenID%3Dstale"})
        assert stale.status_code == 401
        csrf_cookie = client.cookies[CSRF]
        client.cookies.delete(CSRF)  # the header alone is not enough: it must match the cookie
        without_cookie = create(client, **{CSRF_HEADER: csrf_cookie})
        assert without_cookie.status_code == 401
        assert akana.store.app_ids() == []


def test_csrf_off_needs_no_header(akana_factory: Any) -> None:
    running = akana_factory(csrf=False)
    with running.logged_in() as client:
        assert CSRF not in client.cookies
        assert create(client).status_code == 200


def test_the_session_expires(akana_factory: Any) -> None:
    clock = SettableClock(time.time())
    running = akana_factory(clock=clock, session_seconds=60)
    with running.http() as client:
        login = client.post("/api/login", json={"email": EMAIL, "password": PASSWORD})
        assert "Max-Age=60" in login.headers["set-cookie"]
        clock.advance(59)
        assert client.get("/api/apps", headers={"Accept": VND}).status_code == 200
        clock.advance(2)
        assert client.get("/api/apps", headers={"Accept": VND}).status_code == 401


def test_renew_token_replaces_the_cookie(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        old = client.cookies[SESSION]
        json_renew = client.post("/api/login/renewToken", json={}, headers=csrf_headers(client))
        assert json_renew.status_code == 404  # form content type only
        renewed = client.post(
            "/api/login/renewToken",
            headers=csrf_headers(client, **{"Content-Type": "application/x-www-form-urlencoded"}),
        )
        assert renewed.status_code == 200
        new = client.cookies[SESSION]
        assert new != old
        assert client.get("/api/apps", headers={"Accept": VND}).status_code == 200
        with akana.http(cookies={SESSION: old}) as stale:
            assert stale.get("/api/apps", headers={"Accept": VND}).status_code == 401
    assert akana.store.count("renew") == 2


@pytest.mark.parametrize("how", ["endsession", "logout"])
def test_logout_ends_the_session(akana: RunningAkana, how: str) -> None:
    with akana.logged_in() as client:
        token = client.cookies[SESSION]
        if how == "endsession":
            assert client.get("/api/login/endsession").status_code == 200
        else:
            assert client.post("/api/login/logout").status_code == 401  # a write: CSRF
            assert client.post("/api/login/logout", headers=csrf_headers(client)).status_code == 200
    with akana.http(cookies={SESSION: token}) as again:
        assert again.get("/api/apps", headers={"Accept": VND}).status_code == 401


# --- media types and verbs ---------------------------------------------------------------


@pytest.mark.parametrize("accept", ["application/json", "*/*", "application/vnd.soa.v83+xml", ""])
def test_a_wrong_accept_is_404(akana: RunningAkana, accept: str) -> None:
    with akana.logged_in() as client:
        assert client.get("/api/apps", headers={"Accept": accept}).status_code == 404


def test_create_needs_an_accept_for_text_and_a_json_media_type(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        assert create(client, Accept=VND).status_code == 404
        assert create(client, **{"Content-Type": "text/plain"}).status_code == 404
        assert create(client, "not json").status_code == 404  # "invalid POST content"
        assert create(client, "[1]").status_code == 404
        vendor = create(client, **{"Content-Type": "application/vnd.soa.v81+json"})
        assert vendor.status_code == 200


def test_a_wrong_verb_is_404(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        app_id = created_id(client)
        patched = client.patch(
            f"/api/apps/{app_id}", json={"Name": "x"}, headers=csrf_headers(client)
        )
        assert patched.status_code == 404


# --- apps --------------------------------------------------------------------------------


def test_create_answers_the_app_id_as_plain_text_and_asks_to_renew(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        response = create(client)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.headers["atmo-renew-token"] == "renew"
        assert ID_RE.fullmatch(response.text)
        assert akana.store.app_ids() == [response.text]


def test_list_has_the_documented_fields(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        app_id = created_id(client)
        business_app = created_id(client, DOCS_CREATE_3)
        response = client.get("/api/apps", headers={"Accept": VND})
        assert response.headers["content-type"].startswith(VND)
        [entry] = response.json()["Application"]  # the root level only
        assert set(entry) == {"AppID", "Name", "Description", "Created", "Updated", "State",
                              "Visibility", "AvatarURL"}  # fmt: skip
        assert (entry["AppID"], entry["Name"]) == (app_id, "Crosfhocal")
        assert entry["State"] == "com.soa.app.state.active"
        assert entry["Visibility"] == "Public"
        scoped = client.get("/api/apps", params={"BusinessID": BUSINESS}, headers={"Accept": VND})
        assert [a["AppID"] for a in scoped.json()["Application"]] == [business_app]


def test_get_one_app(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        app_id = created_id(client, DOCS_CREATE_3)
        app = client.get(f"/api/apps/{app_id}", headers={"Accept": VND}).json()
        assert app["Summary"] == "Crossword puzzle app"
        assert app["BusinessID"] == BUSINESS
        missing = client.get(f"/api/apps/nope.{FED}", headers={"Accept": VND})
        assert missing.status_code == 404
        assert "not found" in missing.json()["message"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (app_body("A", Unknown=1), "unknown field"),
        ({"ApplicationVersion": {"Name": "1"}}, "Name is required"),
        ({"Name": "A"}, "ApplicationVersion is required"),
        (app_body("A", Description=5), "must be a string"),
        ({"Name": "A", "ApplicationVersion": {"Name": "1", "Visibility": "Everyone"}},
         "Visibility"),
        ({"Name": "A", "ApplicationVersion": {"Name": "1", "SharedSecret": "1234"}},
         "SharedSecret"),
        (app_body(" "), "must not be empty"),
    ],
)  # fmt: skip
def test_bad_create_bodies_are_400(akana: RunningAkana, body: dict[str, Any], problem: str) -> None:
    with akana.logged_in() as client:
        response = client.post("/api/apps", json=body, headers=csrf_headers(client, Accept="*/*"))
        assert response.status_code == 400
        assert problem in response.json()["message"]
        assert akana.store.app_ids() == []


def test_a_duplicate_name_is_400(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        created_id(client)
        again = create(client)
        assert again.status_code == 400
        assert "already exists" in again.json()["message"]
        assert create(client, DOCS_CREATE_3).status_code == 200  # names are per organization


def test_update_an_app(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        app_id = created_id(client)
        response = client.put(
            f"/api/apps/{app_id}",
            json={"Name": "Crosfhocal 2", "Description": "new"},
            headers=csrf_headers(client, Accept=VND),
        )
        assert response.status_code == 200
        assert response.headers["atmo-renew-token"] == "renew"
        app = client.get(f"/api/apps/{app_id}", headers={"Accept": VND}).json()
        assert (app["Name"], app["Description"], app["Summary"]) == (
            "Crosfhocal 2", "new", "Crossword puzzle app"
        )  # fmt: skip


def test_delete_an_app_deletes_its_versions(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        app_id = created_id(client)
        [version] = client.get(f"/api/apps/{app_id}/versions", headers={"Accept": VND}).json()[
            "ApplicationVersion"
        ]
        deleted = client.delete(
            f"/api/apps/{app_id}", params={"Comment": "retired"}, headers=csrf_headers(client)
        )
        assert deleted.status_code == 200
        assert client.get(f"/api/apps/{app_id}", headers={"Accept": VND}).status_code == 404
        gone = client.get(f"/api/apps/versions/{version['AppVersionID']}", headers={"Accept": VND})
        assert gone.status_code == 404


# --- versions ----------------------------------------------------------------------------


def test_versions_add_update_delete(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        app_id = created_id(client)
        listing = client.get(f"/api/apps/{app_id}/versions", headers={"Accept": VND}).json()
        [first] = listing["ApplicationVersion"]
        assert (first["Name"], first["Tag"][0], first["AppID"]) == ("1.0", "puzzle", app_id)
        added = client.post(
            f"/api/apps/{app_id}/versions",
            json={"Name": "2.0", "Tag": ["x"]},
            headers=csrf_headers(client, Accept="text/plain"),
        )
        assert added.status_code == 200 and ID_RE.fullmatch(added.text)
        assert added.headers["atmo-renew-token"] == "renew"
        duplicate = client.post(
            f"/api/apps/{app_id}/versions",
            json={"Name": "2.0"},
            headers=csrf_headers(client, Accept="text/plain"),
        )
        assert duplicate.status_code == 400
        updated = client.put(
            f"/api/apps/versions/{added.text}",
            json={"Name": "2.0", "Description": "second", "Visibility": "Private"},
            headers=csrf_headers(client, Accept=VND),
        )
        assert updated.status_code == 200 and updated.headers["atmo-renew-token"] == "renew"
        got = client.get(f"/api/apps/versions/{added.text}", headers={"Accept": VND}).json()
        assert (got["Description"], got["Visibility"], got["Tag"]) == ("second", "Private", ["x"])
        deleted = client.delete(
            f"/api/apps/versions/{first['AppVersionID']}", headers=csrf_headers(client)
        )
        assert deleted.status_code == 200
        names = [
            v["Name"]
            for v in client.get(f"/api/apps/{app_id}/versions", headers={"Accept": VND}).json()[
                "ApplicationVersion"
            ]
        ]
        assert names == ["2.0"]


def test_deleting_the_only_version_deletes_the_app(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        app_id = created_id(client)
        [only] = client.get(f"/api/apps/{app_id}/versions", headers={"Accept": VND}).json()[
            "ApplicationVersion"
        ]
        deleted = client.delete(
            f"/api/apps/versions/{only['AppVersionID']}", headers=csrf_headers(client)
        )
        assert deleted.status_code == 200
        assert client.get(f"/api/apps/{app_id}", headers={"Accept": VND}).status_code == 404
        assert akana.store.app_ids() == []


def test_a_version_of_an_unknown_app_is_404(akana: RunningAkana) -> None:
    with akana.logged_in() as client:
        response = client.post(
            f"/api/apps/nope.{FED}/versions",
            json={"Name": "1"},
            headers=csrf_headers(client, Accept="text/plain"),
        )
        assert response.status_code == 404
