"""Loading: files and folders, documents, environment substitution, selection, the demo fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ConfigError, ManifestError
from reconciler.manifest import LoadedApp, parse_selectors, select_apps
from reconciler.providers.miniappcenter.manifest import load_manifests
from reconciler.providers.miniappcenter.model import MiniApp, MiniAppSpec

REPO = Path(__file__).resolve().parent.parent
FLEET = REPO / "manifests"
# The demo fleet's Mini App Center part (manifests/akana holds the Akana apps).
MINI_APPS = [FLEET / "cafe", FLEET / "payments"]


def doc(app_id: str, *, labels: str = "{}", name: str = "Shop", extra: str = "") -> str:
    return (
        "apiVersion: miniappcenter/v1\n"
        "kind: MiniApp\n"
        "metadata:\n"
        f"  id: {app_id}\n"
        f"  labels: {labels}\n"
        "spec:\n"
        f"  name: {name}\n"
        "  superapp_id: com.example.superapp\n"
        "  type: native\n"
        f"{extra}"
    )


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def ids(loaded: list[LoadedApp]) -> list[str]:
    return [item.app.id for item in loaded]


def test_several_documents_per_file_and_empty_documents_skipped(here: Path) -> None:
    write(
        "apps.yaml",
        "# header comment\n---\n"
        + doc("com.example.a")
        + "---\n---\n# only a comment\n---\n"
        + doc("com.example.b")
        + "...\n",
    )
    loaded = load_manifests(["apps.yaml"], {})
    assert [(item.app.id, item.file, item.line) for item in loaded] == [
        ("com.example.a", "apps.yaml", 3),
        ("com.example.b", "apps.yaml", 16),
    ]


def test_a_file_of_only_comments_holds_no_apps(here: Path) -> None:
    write("empty.yaml", "# nothing here yet\n")
    assert load_manifests(["empty.yaml"], {}) == []


def test_folders_are_read_recursively_in_sorted_order(here: Path) -> None:
    write("fleet/z.yaml", doc("com.example.z"))
    write("fleet/a/b.yml", doc("com.example.ab"))
    write("fleet/a-b/c.yaml", doc("com.example.a-bc"))
    write("fleet/a/a.yaml", doc("com.example.aa"))
    write("fleet/m.yaml", doc("com.example.m"))
    write("fleet/README.md", "not a manifest")
    write("fleet/.hidden/x.yaml", "not: [even yaml")
    write("fleet/.draft.yaml", "not: [even yaml")
    loaded = load_manifests(["fleet"], {})
    assert [item.file for item in loaded] == [
        "fleet/a/a.yaml",
        "fleet/a/b.yml",
        "fleet/a-b/c.yaml",
        "fleet/m.yaml",
        "fleet/z.yaml",
    ]


def test_paths_keep_command_line_order_and_a_file_is_read_once(here: Path) -> None:
    write("fleet/one.yaml", doc("com.example.one"))
    write("extra.manifest", doc("com.example.extra"))  # named explicitly: any extension
    loaded = load_manifests(["extra.manifest", "fleet", "fleet/one.yaml"], {})
    assert [(item.file, item.app.id) for item in loaded] == [
        ("extra.manifest", "com.example.extra"),
        ("fleet/one.yaml", "com.example.one"),
    ]


def test_model_normalises_and_loader_keeps_values_as_written(here: Path) -> None:
    extra = (
        "  keywords: coffee   cafe\n"
        "  locations:\n"
        "    - name: Central\n"
        "      geo_point: POINT( -56.1637400   -34.92 )\n"
        "  versions:\n"
        '    - code: "1.10"\n'
        "      platform_id: iOS\n"
        "      main_name: Start\n"
        "      main_type: panel\n"
        "      compatibility: [2, 1]\n"
    )
    write("m.yaml", doc("com.example.a", extra=extra))
    (loaded,) = load_manifests(["m.yaml"], {})
    spec = loaded.app.spec
    assert spec.type == "Native"
    assert spec.keywords == "coffee cafe"
    assert spec.locations is not None and spec.locations[0].geo_point == "POINT(-56.16374 -34.92)"
    assert spec.versions is not None
    assert (spec.versions[0].code, spec.versions[0].main_type) == ("1.10", "Panel")
    assert spec.versions[0].compatibility == (1, 2)


def test_environment_substitution(here: Path) -> None:
    extra = (
        "  description: ${GREETING} from ${CITY:-Montevideo} and ${EMPTY:-nowhere}\n"
        "  keywords: $${LITERAL} costs $5 ${SET:-unused}\n"
        "  attributes:\n"
        "    COUNTRY: ${COUNTRY}\n"
    )
    write(
        "m.yaml",
        doc("com.example.a", labels="{env: '${ENV:-dev}'}", name="${NAME}", extra=extra),
    )
    env = {"GREETING": "Hello", "NAME": "Shop", "EMPTY": "", "SET": "set", "COUNTRY": "Uruguay"}
    (loaded,) = load_manifests(["m.yaml"], env)
    spec = loaded.app.spec
    assert spec.name == "Shop"
    assert spec.description == "Hello from Montevideo and nowhere"
    assert spec.keywords == "${LITERAL} costs $5 set"
    assert spec.attributes == {"COUNTRY": "Uruguay"}
    assert loaded.app.labels == {"env": "dev"}


def test_substituted_values_stay_strings_and_keys_are_not_substituted(here: Path) -> None:
    extra = "  attributes:\n    ${KEY}: x\n"
    write("m.yaml", doc("com.example.a", name="${NUMBER}", extra=extra))
    with pytest.raises(ManifestError) as caught:
        load_manifests(["m.yaml"], {"NUMBER": "1.10", "KEY": "COUNTRY"})
    # The value became the string "1.10"; the key was left as written, and is refused.
    assert [issue.path for issue in caught.value.issues] == ["spec.attributes.${KEY}"]


def test_every_unset_variable_is_reported(here: Path) -> None:
    write("m.yaml", doc("com.example.a", name="${A}-${B}"))
    with pytest.raises(ManifestError) as caught:
        load_manifests(["m.yaml"], {})
    assert [issue.message.split(" (")[0] for issue in caught.value.issues] == [
        "environment variable A is not set",
        "environment variable B is not set",
    ]


def test_ensure_absent_needs_only_the_id(here: Path) -> None:
    write(
        "gone.yaml",
        "apiVersion: miniappcenter/v1\nkind: MiniApp\nmetadata:\n  id: com.example.old\n"
        "spec:\n  ensure: absent\n",
    )
    (loaded,) = load_manifests(["gone.yaml"], {})
    assert loaded.app == MiniApp(id="com.example.old", spec=MiniAppSpec(ensure="absent"))
    assert loaded.app.absent


def test_parse_selectors() -> None:
    assert parse_selectors([]) == {}
    assert parse_selectors(["team=cafe", "env=prod", "team=cafe", "note=a=b", "empty="]) == {
        "team": "cafe",
        "env": "prod",
        "note": "a=b",
        "empty": "",
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["team"], "invalid selector 'team': expected KEY=VALUE, e.g. team=cafe"),
        (["=cafe"], "invalid selector '=cafe': expected KEY=VALUE, e.g. team=cafe"),
        (["my team=cafe"], "invalid selector 'my team=cafe': label names start with"),
        (["env=prod", "env=dev"], "conflicting selectors env=prod and env=dev"),
    ],
)
def test_parse_selectors_rejects_bad_syntax(values: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_selectors(values)


def test_select_apps_by_labels_and_targets(here: Path) -> None:
    write("a.yaml", doc("com.example.a", labels="{team: cafe, env: prod}"))
    write("b.yaml", doc("com.example.b", labels="{team: cafe, env: dev}"))
    write("c.yaml", doc("com.example.c", labels="{team: pay, env: prod}"))
    loaded = load_manifests(["a.yaml", "b.yaml", "c.yaml"], {})
    assert ids(select_apps(loaded, {}, [])) == ["com.example.a", "com.example.b", "com.example.c"]
    assert ids(select_apps(loaded, {"team": "cafe"}, [])) == ["com.example.a", "com.example.b"]
    assert ids(select_apps(loaded, {"team": "cafe", "env": "prod"}, [])) == ["com.example.a"]
    assert ids(select_apps(loaded, {"missing": "x"}, [])) == []
    assert ids(select_apps(loaded, {}, ["com.example.c", "com.example.b"])) == [
        "com.example.b",
        "com.example.c",
    ]
    assert ids(select_apps(loaded, {"env": "prod"}, ["com.example.c", "com.example.b"])) == [
        "com.example.c"
    ]
    plain = [item.app for item in loaded]  # MiniApp values work too
    assert [a.id for a in select_apps(plain, {"env": "dev"})] == ["com.example.b"]


# --- the demo fleet ----------------------------------------------------------------------


def test_demo_fleet_validates() -> None:
    loaded = load_manifests(MINI_APPS, {})
    apps = {item.app.id: item.app for item in loaded}
    assert list(apps) == [
        "com.genexus.verdant.sweetcorner",
        "com.genexus.verdant.teatime",
        "com.genexus.verdant.coffeemuffins",
        "com.genexus.verdant.loyaltypoints",
        "com.genexus.verdant.splitbill",
    ]
    assert {app.spec.superapp_id for app in apps.values()} == {"com.genexus.verdantbank"}
    assert [app_id for app_id, app in apps.items() if app.protect] == [
        "com.genexus.verdant.coffeemuffins"
    ]
    statuses = {v.status for app in apps.values() for v in app.spec.versions or ()}
    assert {"pending", "waiting_for_review", "in_review", "ready"} <= statuses
    assert {item.file for item in loaded} == {
        str(FLEET / name)
        for name in (
            "cafe/bakeries.yaml",
            "cafe/coffeemuffins.yaml",
            "payments/loyalty.yaml",
            "payments/splitbill.yaml",
        )
    }
    split = apps["com.genexus.verdant.splitbill"].spec.versions
    assert split is not None and split[0].service_url is not None
    assert split[0].service_url.startswith("https://apps6.genexus.com/")


def test_demo_fleet_takes_the_service_url_from_the_environment() -> None:
    url = "https://staging.example.com/splitbill/"
    loaded = load_manifests(MINI_APPS, {"SPLITBILL_SERVICE_URL": url})
    (split,) = [item.app for item in loaded if item.app.id == "com.genexus.verdant.splitbill"]
    assert [v.service_url for v in split.spec.versions or ()] == [url, url]


def test_demo_fleet_files_point_editors_at_the_schema() -> None:
    files = sorted(FLEET.rglob("*.yaml"))
    assert files
    for file in files:
        text = file.read_text(encoding="utf-8")
        schema = "akana-app" if "apiVersion: akana/v1" in text else "miniapp"
        first = text.splitlines()[0]
        assert first == f"# yaml-language-server: $schema=../../schema/{schema}.schema.json", file
        target = (file.parent / f"../../schema/{schema}.schema.json").resolve()
        assert target == REPO / "schema" / f"{schema}.schema.json"


def test_demo_fleet_selects_by_team() -> None:
    loaded = load_manifests(MINI_APPS, {})
    assert ids(select_apps(loaded, parse_selectors(["team=payments"]), [])) == [
        "com.genexus.verdant.loyaltypoints",
        "com.genexus.verdant.splitbill",
    ]
