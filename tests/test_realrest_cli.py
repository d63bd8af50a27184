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


def use_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, realshop: RealShop, api_key: str
) -> Path:
    """A project folder: reconciler.yaml, its variables set for ``api_key``'s tenant."""
    monkeypatch.chdir(tmp_path)
    for var in ("RECONCILER_STATE", "RECONCILER_CONFIG", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    for name, value in realshop.env(api_key).items():
        monkeypatch.setenv(name, value)
    (tmp_path / "reconciler.yaml").write_text(PROJECT, encoding="utf-8")
    (tmp_path / "manifests").mkdir()
    return tmp_path


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, realshop: RealShop, realshop_tenant: str
) -> Path:
    return use_project(tmp_path, monkeypatch, realshop, realshop_tenant)


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


def test_every_page_of_a_collection_is_read(
    project: Path, capsys: pytest.CaptureFixture[str], realshop: RealShop
) -> None:
    count = 3 * realshop.page_size + 2
    manifest(project, "many.yaml", "---\n".join(product(f"PG-{n:02d}", "1") for n in range(count)))
    code, out, err = run(capsys, "apply", "manifests", "--auto-approve")
    assert code == 0 and f"Apply complete: {count} applied" in out, out + err
    # Each object is found on its page: nothing to create again, nothing adopted twice.
    code, out, err = run(capsys, "plan", "manifests", "--detailed-exitcode")
    assert code == 0 and "No changes" in out, out + err


def test_a_400_names_the_field_at_its_manifest_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(project, "bad.yaml", product("BAD-1", '"cheap"'))
    code, out, err = run(capsys, "apply", "manifests", "--auto-approve")
    assert code == 1, out + err
    line = path.read_text().splitlines().index('    price: "cheap"') + 1
    where = f"{Path('manifests') / 'bad.yaml'}:{line}:12: spec.body.price"
    assert f"{where}: A valid number is required." in out + err
    assert "\\u000a" not in out + err  # real line breaks, never an escaped one
    assert "POST /api/products/ refused (400)\n" in out + err


def test_the_read_only_public_key_is_a_clear_403(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    realshop: RealShop,
) -> None:  # fmt: skip
    folder = use_project(tmp_path, monkeypatch, realshop, realshop.api_keys["public"])
    manifest(folder, "p.yaml", product("PUB-1"))
    code, out, err = run(capsys, "plan", "manifests")
    assert code == 0, out + err  # reading the public schema is allowed
    code, out, err = run(capsys, "apply", "manifests", "--auto-approve")
    assert code == 1, out + err
    assert "403" in err and "You do not have permission to perform this action." in err
    assert realshop.api_keys["public"] not in out + err


SUPPLIER = """\
apiVersion: rest/v1
kind: RestObject
spec:
  endpoint: shop
  path: /api/suppliers/
  key: code
  body:
    code: {code}
    name: Supplier {code}
"""
BY_ID = "    supplier: {$ref: {path: /api/suppliers/, key: %s}}\n"


def test_a_product_and_the_supplier_it_references_are_created_in_one_apply(
    project: Path, capsys: pytest.CaptureFixture[str], realshop: RealShop, realshop_tenant: str
) -> None:
    # The product is declared (and listed) first: the order comes from the reference.
    manifest(project, "a-product.yaml", product("REF-1", "5", BY_ID % "ACME"))
    manifest(project, "b-supplier.yaml", SUPPLIER.format(code="ACME"))
    code, out, err = run(capsys, "plan", "manifests")
    assert code == 0, out + err
    assert "supplier: (known after apply)" in out
    code, out, err = run(capsys, "apply", "manifests", "--auto-approve", "--parallelism", "8")
    assert code == 0 and "2 applied, 0 failed" in out, out + err
    headers = {"Authorization": f"Bearer {realshop.access()}", "Api-Key": realshop_tenant}
    with realshop.http(headers=headers) as client:
        [supplier] = client.get("/api/suppliers/").json()["results"]
        [made] = client.get("/api/products/").json()["results"]
    assert made["supplier"] == supplier["id"]
    code, out, err = run(capsys, "plan", "manifests", "--detailed-exitcode")
    assert code == 0 and "No changes" in out, out + err
    # Both declared absent: the product's delete goes first (the server refuses to delete a
    # supplier a product still names: on_delete=PROTECT).
    # The product is now declared last: its delete is listed after the supplier's.
    (project / "manifests" / "a-product.yaml").unlink()
    for name, text in (
        ("z-product.yaml", product("REF-1", "5", BY_ID % "ACME")),
        ("b-supplier.yaml", SUPPLIER.format(code="ACME")),
    ):
        manifest(project, name, text.replace("  key:", "  ensure: absent\n  key:"))
    code, out, err = run(capsys, "apply", "manifests", "--auto-approve", "--parallelism", "8")
    assert code == 0 and "2 applied, 0 failed" in out, out + err


def test_a_reference_to_an_object_outside_the_manifests_is_read_never_written(
    project: Path, capsys: pytest.CaptureFixture[str], realshop: RealShop, realshop_tenant: str
) -> None:
    outside = "    supplier: {$ref: {path: /api/suppliers/, key: BOLT, key_field: code}}\n"
    manifest(project, "p.yaml", product("REF-2", "5", outside))
    code, out, err = run(capsys, "plan", "manifests")
    assert code != 0 and "no such object on the server" in out + err, out + err
    headers = {"Authorization": f"Bearer {realshop.access()}", "Api-Key": realshop_tenant}
    with realshop.http(headers=headers) as client:
        bolt = client.post("/api/suppliers/", json={"code": "BOLT", "name": "Bolt"}).json()
    code, out, err = run(capsys, "plan", "manifests")
    assert code == 0 and f"supplier: {bolt['id']}" in out, out + err
    code, out, err = run(capsys, "apply", "manifests", "--auto-approve")
    assert code == 0 and "1 applied" in out, out + err
    with realshop.http(headers=headers) as client:
        [made] = client.get("/api/products/").json()["results"]
        [still] = client.get("/api/suppliers/").json()["results"]
    assert made["supplier"] == bolt["id"] and still == bolt
    code, out, err = run(capsys, "plan", "manifests", "--detailed-exitcode")
    assert code == 0, out + err


def test_validate_places_an_unknown_target_and_a_cycle(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest(project, "p.yaml", product("REF-3", "5", BY_ID % "NOPE"))
    code, out, err = run(capsys, "validate", "manifests")
    assert code == 1
    line = (project / "manifests" / "p.yaml").read_text().splitlines().index(
        BY_ID.rstrip("\n") % "NOPE"
    ) + 1
    assert f"p.yaml:{line}:15: spec.body.supplier: references /api/suppliers/NOPE" in out
    cyc = (
        "  body:\n    code: {c}\n    name: n\n"
        "    other: {{$ref: {{path: /api/suppliers/, key: {o}}}}}\n"
    )
    head = SUPPLIER.split("  body:")[0]
    manifest(
        project,
        "p.yaml",
        head + cyc.format(c="A", o="B") + "---\n" + head + cyc.format(c="B", o="A"),
    )
    code, out, err = run(capsys, "validate", "manifests")
    assert code == 1 and "references form a cycle: shop:/api/suppliers/:" in out, out + err
    assert "p.yaml:21:12: spec.body.other" in out, out  # B's reference closes the cycle
