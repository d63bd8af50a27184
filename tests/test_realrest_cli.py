"""The REST provider end to end against a real Django REST framework server
(tests/fixtures_realrest.py), driven through the CLI as the README tells a user: a project
file (reconciler.yaml) naming the variables, manifests, plan / apply / drift."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.fixtures_realrest import RealShop

REPO = Path(__file__).resolve().parent.parent
PROJECT = """\
endpoints:
  shop:
    base_url: ${TENANT_BASE_URL}
    auth:
      type: jwt
      token_path: /api/token/
      refresh_path: /api/token/refresh/
      username_env: TENANT_USERNAME
      password_env: TENANT_PASSWORD
    api_key:
      header: Api-Key
      env: TENANT_API_KEY
"""


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, realshop: RealShop, realshop_tenant: str
) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("RECONCILER_STATE", "RECONCILER_CONFIG", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    for name, value in realshop.env(realshop_tenant).items():
        monkeypatch.setenv(name, value)
    (tmp_path / "reconciler.yaml").write_text(PROJECT, encoding="utf-8")
    (tmp_path / "manifests").mkdir()
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def manifest(folder: Path, name: str, text: str) -> Path:
    path = folder / "manifests" / name
    path.write_text(text, encoding="utf-8")
    return path


def product(sku: str, price: str = "12.5", extra: str = "") -> str:
    return (
        "apiVersion: rest/v1\nkind: RestObject\nspec:\n  endpoint: shop\n"
        f"  path: /api/products/\n  key: sku\n  body:\n    sku: {sku}\n    name: Item {sku}\n"
        f"    price: {price}\n{extra}  ignore: [created_at, updated_at]\n"
    )


def test_the_example_catalogue_converges_after_one_apply(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "examples" / "rest" / "manifests", project / "catalogue")
    code, out, err = run(capsys, "plan", "catalogue", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["summary"]["create"] == 5
    code, out, err = run(capsys, "apply", "catalogue", "--auto-approve")
    assert code == 0, out + err
    code, out, err = run(capsys, "plan", "catalogue", "--detailed-exitcode")
    assert code == 0, out + err
    assert "No changes" in out
    code, out, err = run(capsys, "drift", "catalogue")
    assert code == 0, out + err


def _patch(realshop: RealShop, api_key: str, path: str, fields: dict[str, object]) -> None:
    headers = {"Authorization": f"Bearer {realshop.access()}", "Api-Key": api_key}
    with realshop.http(headers=headers) as client:
        listing = client.get(path).json()["results"]
        found = next(item for item in listing if item["sku"] == fields["sku"])
        answer = client.patch(f"{path}{found['id']}/", json=fields)
        assert answer.status_code == 200, answer.text


def test_a_decimal_the_server_normalizes_converges_and_is_said_once(
    project: Path, capsys: pytest.CaptureFixture[str], realshop: RealShop, realshop_tenant: str
) -> None:
    manifest(project, "p.yaml", product("DEC-1", "12.5"))
    code, out, err = run(capsys, "apply", "manifests", "--auto-approve")
    assert code == 0, out + err
    assert 'the server normalized price: 12.5 -> "12.50"' in out + err
    code, out, err = run(capsys, "plan", "manifests", "--detailed-exitcode")
    assert (code, "No changes" in out) == (0, True), out + err
    # A real change made outside is still seen, with its reason, and put back.
    _patch(realshop, realshop_tenant, "/api/products/", {"sku": "DEC-1", "price": "13.00"})
    code, out, err = run(capsys, "plan", "manifests", "--detailed-exitcode")
    assert code == 2, out + err
    assert 'price: "13.00" -> 12.5' in out and "changed outside since the last apply" in out
    code, out, err = run(capsys, "drift", "manifests", "--format", "json")
    assert code != 0 and "changed_outside" in out, out + err
    code, out, err = run(capsys, "apply", "manifests", "--auto-approve")
    assert code == 0 and out.count("normalized") + err.count("normalized") == 1, out + err
    # The manifest changes: an update, not "changed outside".
    manifest(project, "p.yaml", product("DEC-1", "14.25"))
    code, out, err = run(capsys, "plan", "manifests")
    assert 'price: "12.50" -> 14.25' in out and "changed outside" not in out, out
    code, out, err = run(capsys, "apply", "manifests", "--auto-approve")
    assert code == 0 and 'normalized price: 14.25 -> "14.25"' in out + err, out + err
    code, out, err = run(capsys, "plan", "manifests", "--detailed-exitcode")
    assert code == 0, out + err
