"""Properties: normalisers are idempotent; render_manifest -> load gives back the same MiniApp."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.manifest.labels import LABEL_KEY_PATTERN
from reconciler.providers.miniappcenter.ids import (
    APP_ID_PATTERN,
    ATTRIBUTE_FIELD_PATTERN,
    location_name_problem,
    version_code_problem,
)
from reconciler.providers.miniappcenter.manifest import load_manifests, render_manifest
from reconciler.providers.miniappcenter.model import (
    STATUSES,
    Location,
    MiniApp,
    MiniAppSpec,
    Version,
    normalize_geo_point,
    normalize_keywords,
    normalize_type,
)

# --- normalisers ---------------------------------------------------------------------------

longitudes = st.floats(min_value=-180, max_value=180, allow_nan=False)
latitudes = st.floats(min_value=-90, max_value=90, allow_nan=False)
def _location_name_ok(text: str) -> bool:
    return location_name_problem(text) is None


def _version_code_ok(text: str) -> bool:
    return version_code_problem(text) is None


spaces = st.text(alphabet=" \t", max_size=3)


def numbers(values: st.SearchStrategy[float], limit: float) -> st.SearchStrategy[str]:
    """Number spellings WKT allows (``.5``, ``5.``, ``+1e1``, ``-0``) within +-limit."""
    written = st.from_regex(
        r"[-+]?([0-9]{1,3}(\.[0-9]{0,8})?|\.[0-9]{1,8})([eE][-+]?[0-9])?", fullmatch=True
    )
    return values.flatmap(
        lambda v: st.sampled_from([repr(v), f"{v:.6f}", f"{v:e}"])
    ) | written.filter(lambda text: abs(float(text)) <= limit)


@st.composite
def wkt_points(draw: st.DrawFn) -> str:
    """Valid WKT points, spelt loosely: any case, odd spacing, an optional SRID prefix."""
    keyword = draw(st.sampled_from(["POINT", "point", "Point"]))
    srid = draw(st.sampled_from(["", "SRID=4326;", "SRID=4326 ; "]))
    lon_text = draw(numbers(longitudes, 180))
    lat_text = draw(numbers(latitudes, 90))
    s = [draw(spaces) for _ in range(4)]
    return f"{srid}{keyword}{s[0]}({s[1]}{lon_text} {s[2]}{lat_text}{s[3]})"


@given(wkt_points())
def test_normalize_geo_point_is_idempotent(value: str) -> None:
    once = normalize_geo_point(value)
    assert normalize_geo_point(once) == once
    assert once.startswith("POINT(") and "  " not in once


@given(st.sampled_from(["native", "web"]), st.data())
def test_normalize_type_is_idempotent(word: str, data: st.DataObject) -> None:
    spelt = "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in word)
    value = data.draw(spaces) + spelt + data.draw(spaces)
    once = normalize_type(value)
    assert once in ("Native", "Web")
    assert normalize_type(once) == once


@given(st.text())
def test_normalize_keywords_is_idempotent(value: str) -> None:
    once = normalize_keywords(value)
    assert normalize_keywords(once) == once


# --- render -> load round trip -----------------------------------------------------------

texts = st.text(max_size=20)
app_ids = st.from_regex(APP_ID_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 255)
object_ids = st.from_regex(r"gxupload:[0-9a-f]{32}", fullmatch=True)
urls = st.from_regex(r"https?://[a-z0-9.-]{1,20}(/[A-Za-z0-9._~%${}-]{0,10}){0,3}", fullmatch=True)
points = st.builds(lambda lon, lat: f"POINT({lon!r} {lat!r})", longitudes, latitudes)


def optional(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | strategy


locations = st.lists(
    st.builds(Location, name=st.text(min_size=1, max_size=15).filter(_location_name_ok),
              geo_point=points),
    max_size=3,
    unique_by=lambda location: location.name,
)
versions = st.lists(
    st.builds(
        Version,
        code=st.text(min_size=1, max_size=10).filter(_version_code_ok)
        | st.sampled_from(["1.10", "1.0.0", "2", "NO"]),
        platform_id=texts | st.sampled_from(["iOS", "Android", "yes", "0x10"]),
        metadata=optional(object_ids),
        integrated_security=optional(st.booleans()),
        main_name=texts,
        main_type=st.sampled_from(["Panel", "menu", "MENU"]),
        service_url=optional(urls),
        compatibility=optional(
            st.lists(st.integers(min_value=1, max_value=10**6), unique=True, max_size=4).map(tuple)
        ),
        status=optional(st.sampled_from(STATUSES)),
    ),
    max_size=3,
    unique_by=lambda version: version.code,
)
attributes = st.dictionaries(
    st.from_regex(ATTRIBUTE_FIELD_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 40),
    texts | st.sampled_from(["12", "1.10", "on", "${X}", "$${X}", "null", "~"]),
    max_size=3,
)
labels = st.dictionaries(
    st.from_regex(LABEL_KEY_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 30),
    texts | st.sampled_from(["prod", "true", "1", "${ENV:-dev}"]),
    max_size=3,
)


@st.composite
def mini_apps(draw: st.DrawFn) -> MiniApp:
    absent = draw(st.booleans())
    # What creating an app needs is required when present; a protected app cannot be absent.
    needed = optional if absent else (lambda strategy: strategy)
    spec = MiniAppSpec(
        ensure="absent" if absent else "present",
        name=draw(needed(texts)),
        description=draw(optional(texts)),
        superapp_id=draw(needed(app_ids)),
        type=draw(needed(st.sampled_from(["Native", "web", "WEB"]))),
        keywords=draw(optional(texts)),
        icon=draw(optional(object_ids)),
        card=draw(optional(object_ids)),
        banner=draw(optional(object_ids)),
        organization_id=draw(optional(texts)),
        attributes=draw(optional(attributes)),
        locations=draw(optional(locations)),
        versions=draw(optional(versions)),
    )
    protect = False if absent else draw(st.booleans())
    return MiniApp(id=draw(app_ids), labels=draw(labels), protect=protect, spec=spec)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("roundtrip")


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(app=mini_apps())
def test_render_then_load_gives_the_same_app(workdir: Path, app: MiniApp) -> None:
    file = workdir / "app.yaml"
    file.write_text(render_manifest(app, schema="../schema/miniapp.schema.json"), "utf-8")
    (loaded,) = load_manifests([file], {"X": "substituted", "ENV": "prod"})
    assert loaded.app == app


def test_render_writes_the_documented_shape() -> None:
    app = MiniApp(
        id="com.genexus.verdant.coffeemuffins",
        labels={"team": "cafe"},
        spec=MiniAppSpec(
            name="Coffee & Muffins",
            superapp_id="com.genexus.verdantbank",
            type="native",
            keywords="coffee  cafe",
            attributes={"COUNTRY": "Uruguay", "CODE": "1.10"},
            locations=(Location(name="Central", geo_point="POINT( -56.1 -34.9 )"),),
            versions=(
                Version(
                    code="1.10",
                    platform_id="NO",
                    integrated_security=True,
                    main_name="startObject",
                    main_type="panel",
                    service_url="https://apps6.genexus.com/x/",
                    compatibility=(2, 1),
                    status="ready",
                ),
            ),
        ),
    )
    text = render_manifest(app, labels={"env": "prod"}, schema="../../schema/miniapp.schema.json")
    assert text == (
        "# yaml-language-server: $schema=../../schema/miniapp.schema.json\n"
        "apiVersion: miniappcenter/v1\n"
        "kind: MiniApp\n"
        "metadata:\n"
        "  id: com.genexus.verdant.coffeemuffins\n"
        "  labels: {team: cafe, env: prod}\n"
        "  protect: false\n"
        "spec:\n"
        "  name: Coffee & Muffins\n"
        "  superapp_id: com.genexus.verdantbank\n"
        "  type: Native\n"
        "  keywords: coffee cafe\n"
        "  attributes:\n"
        "    CODE: '1.10'\n"
        "    COUNTRY: Uruguay\n"
        "  locations:\n"
        "    - name: Central\n"
        "      geo_point: POINT(-56.1 -34.9)\n"
        "  versions:\n"
        '    - code: "1.10"\n'
        "      platform_id: 'NO'\n"
        "      integrated_security: true\n"
        "      main_name: startObject\n"
        "      main_type: Panel\n"
        "      service_url: https://apps6.genexus.com/x/\n"
        "      compatibility: [1, 2]\n"
        "      status: ready\n"
    )


def test_render_absent_app_is_minimal() -> None:
    app = MiniApp(id="com.example.old", spec=MiniAppSpec(ensure="absent"))
    assert render_manifest(app) == (
        "apiVersion: miniappcenter/v1\n"
        "kind: MiniApp\n"
        "metadata:\n"
        "  id: com.example.old\n"
        "  protect: false\n"
        "spec:\n"
        "  ensure: absent\n"
    )


def test_render_escapes_references(tmp_path: Path) -> None:
    app = MiniApp(
        id="com.example.a",
        spec=MiniAppSpec(name="costs ${PRICE} or $${X}", superapp_id="com.example.s", type="Web"),
    )
    text = render_manifest(app)
    assert "  name: costs $${PRICE} or $$${X}\n" in text
    (tmp_path / "a.yaml").write_text(text, "utf-8")
    assert load_manifests([tmp_path / "a.yaml"], {"PRICE": "10"})[0].app == app
