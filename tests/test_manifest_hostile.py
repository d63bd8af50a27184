"""Hostile manifests (issue 11, sections 3 and 4): output stays small and free of secrets
whatever the input, and YAML this tool cannot honour is refused with a file:line message,
never accepted silently, never an internal error.

The last tests feed arbitrary bytes and generated YAML through `reconciler validate`."""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli.main import main
from reconciler.errors import ManifestError
from reconciler.manifest import loader
from reconciler.manifest.screen import MAX_ALIAS_EXPANSION
from reconciler.providers.miniappcenter.manifest import load_manifests
from reconciler.secrets import register_secret, unregister_secret
from tests import test_manifest_errors as manifest_errors

TOKEN = "tok-Very-Secret-Token-0123456789abcdef"
HEX = "fe4602263a224b68a6cdd8c5533e5700"

# The same minimal manifest (and version block) the error tests use, line numbers included.
BASE, VERSION = manifest_errors.BASE, manifest_errors.VERSION
ISSUE_LINE = re.compile(r"^[^\n]+:\d+:\d+: .+$")


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def issues(text: str, env: dict[str, str] | None = None) -> list[str]:
    Path("m.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifests(["m.yaml"], env or {})
    return [str(issue) for issue in caught.value.issues]


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


# --- 3. bounded output -------------------------------------------------------------------


def test_an_alias_fan_out_gives_one_short_error(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """100,000 references to one invalid version: was 13 MB of errors."""
    fan = ", ".join(["*v"] * 100_000)
    Path("m.yaml").write_text(
        BASE + "  versions: [&v {code: 1, bad: x}, " + fan + "]\n", encoding="utf-8"
    )
    code, out, _err = validate(capsys, "m.yaml")
    assert code == 1
    assert out.splitlines() == [
        "m.yaml:1:1: aliases (*name) expand this document by 500000 values, more than the"
        f" limit of {MAX_ALIAS_EXPANSION}; write the values out or use fewer aliases"
    ]


@pytest.mark.parametrize(
    "text",
    [
        BASE + "  x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(f"  y{i}: &a{i + 1} [{', '.join([f'*a{i}' if i else '*a'] * 10)}]\n"
                  for i in range(8)),
        BASE + "  versions: &loop [*loop]\n",
        BASE + "  labels: &m {x: *m}\n",
    ],
    ids=["billion-laughs", "list-loop", "mapping-loop"],
)
def test_alias_bombs_and_loops_are_refused(here: Path, text: str) -> None:
    (only,) = issues(text)
    assert "alias" in only and only.startswith("m.yaml:1:1: ")


def test_unknown_keys_are_capped_per_file_with_the_rest_counted(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """100k unknown keys: was 22 MB of output."""
    keys = "".join(f"  x{i:x}:\n" for i in range(100_000))  # 0.9 MB, under the cap
    Path("m.yaml").write_text(BASE + keys, encoding="utf-8")
    code, out, err = validate(capsys, "m.yaml")
    lines = out.splitlines()
    assert code == 1
    assert len(lines) == loader.MAX_ERRORS_PER_FILE + 1
    assert lines[-1] == f"... and {100_000 - loader.MAX_ERRORS_PER_FILE} more errors"
    assert all(ISSUE_LINE.match(line) for line in lines[:-1])
    assert err.strip() == "100000 errors in 1 file"
    fewer = "".join(f"  k{i}: 1\n" for i in range(2_000))
    Path("m.yaml").write_text(BASE + fewer, encoding="utf-8")
    code, out, _ = validate(capsys, "m.yaml", "--format", "json")
    document = json.loads(out)
    assert len(document["errors"]) == loader.MAX_ERRORS_PER_FILE
    assert document["omitted_errors"] == 2_000 - loader.MAX_ERRORS_PER_FILE


def test_errors_are_capped_across_files(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(10):
        bad = "".join(f"  k{i}: 1\n" for i in range(30))
        Path(f"m{n}.yaml").write_text(BASE.replace("shop", f"shop{n}") + bad, encoding="utf-8")
    code, out, _err = validate(capsys, ".")
    lines = out.splitlines()
    assert code == 1
    assert len(lines) == loader.MAX_ERRORS_TOTAL + 1
    assert lines[-1] == f"... and {300 - loader.MAX_ERRORS_TOTAL} more errors"


@pytest.mark.parametrize("field", ["type", "metadata.id", "unknown key", "ensure", "protect"])
def test_a_huge_value_is_shown_truncated(here: Path, field: str) -> None:
    """A 1.5 MB scalar (under the file cap): was echoed whole."""
    huge = "N" * 1_500_000
    text = {
        "type": BASE.replace("type: Native", f"type: {huge}"),
        "metadata.id": BASE.replace("id: com.example.shop", f"id: {huge}"),
        "unknown key": BASE + f"  {huge}: 1\n",
        "ensure": BASE + f"  ensure: {huge}\n",
        "protect": BASE.replace("metadata:\n", f"metadata:\n  protect: {huge}\n"),
    }[field]
    (only,) = issues(text)
    assert len(only) < 800
    assert "N" * 100 not in only


@pytest.mark.parametrize(
    "template",
    [
        "  type: {v}\n",  # the model's message
        "  ensure: {v}\n",  # an enum
        "  superapp_id: {v}\n",  # an id
        "  versions:\n    - code: x\n      platform_id: iOS\n      main_name: s\n"
        "      main_type: Panel\n      status: {v}\n",
        "  locations:\n    - name: x\n      geo_point: {v}\n",
        "  icon: {v}\n",
        "  attributes: {{'{v}': x}}\n",
        "  {v}: 1\n",  # an unknown key
        "  name: ${{{v}}}\n",  # a variable name
    ],
)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_token_is_never_echoed(
    here: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    template: str,
    fmt: str,
) -> None:
    monkeypatch.setenv("MAC_API_TOKEN", TOKEN)
    value = TOKEN.replace("-", "_")  # a valid variable name / key too
    monkeypatch.setenv("MAC_API_TOKEN", value)
    key = template.strip().split(":")[0]
    body = "".join(line for line in BASE.splitlines(True) if not line.startswith(f"  {key}:"))
    Path("m.yaml").write_text(body + template.format(v=value), encoding="utf-8")
    code, out, err = validate(capsys, "m.yaml", "--format", fmt)
    assert value not in out + err
    # A valid attribute name may equal the token: validate has nothing to report; plan
    # refuses it (the token must never reach a plan).
    assert (code == 1 and "***" in out) or "attributes" in template
    monkeypatch.setenv("MAC_BASE_URL", "http://127.0.0.1:9/api")
    assert main(["plan", "m.yaml", "--format", fmt]) == 1
    out, err = capsys.readouterr()
    assert value not in out + err


def test_a_registered_secret_is_never_echoed(here: Path) -> None:
    """Any secret the process holds (a client's token) is masked, not only MAC_API_TOKEN."""
    secret = "another-live-secret-42"
    register_secret(secret)
    try:
        (only,) = issues(BASE.replace("type: Native", f"type: x{secret}y"))
    finally:
        unregister_secret(secret)
    assert secret not in only and "x***y" in only


# --- 4. YAML that must be refused --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE.replace("name: Shop", 'name: "a\\ud800b"'), "m.yaml:6:9: contains U+D800"),
        (BASE + '  "\\udfff": 1\n', "m.yaml:9:3: contains U+DFFF"),
        (BASE.replace("spec:\n", "spec: !!python/object:os.system\n"), "m.yaml:5:7: unsup"),
        (BASE.replace("spec:\n", "spec: !custom\n"), "unsupported YAML tag '!custom' on a"),
        (BASE + VERSION.replace("versions:", "versions: !!omap"), "tag '!!omap' on a list"),
        (BASE + "  labels: !!set {a}\n", "tag '!!set' on a mapping"),
        (BASE.replace("name: Shop", "name: !Local x"), "unsupported YAML tag '!Local'"),
        (BASE.replace("name: Shop", "name: !<tag:x.com,2000:t> x"), "YAML tag 'tag:x.com"),
    ],
)
def test_tags_and_surrogates_are_refused(here: Path, text: str, expected: str) -> None:
    (only,) = issues(text)
    assert expected in only


def test_a_surrogate_from_the_environment_is_refused(here: Path) -> None:
    """os.environ decodes undecodable bytes to lone surrogates."""
    (only,) = issues(BASE.replace("name: Shop", "name: ${NAME}"), {"NAME": "caf\udce9"})
    assert only.startswith("m.yaml:6:9: spec.name: contains U+DCE9")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1" * 5000, "the integer is too large (5000 digits)"),
        ("-" + "9" * 19, "the integer is too large"),
        ("0x" + "f" * 5000, "write a plain decimal integer, not 0xfff"),
        ("1" + ":30" * 3000, "write a plain decimal integer"),
    ],
)
def test_huge_integers_are_refused(here: Path, value: str, expected: str) -> None:
    version = VERSION + f"      compatibility: [{value}]\n"
    (only,) = issues(BASE + version)
    assert expected in only and len(only) < 400


@pytest.mark.parametrize("value", ["1" * 5000, "0x" + "f" * 5000, "1.5e+" + "9" * 5000])
def test_huge_numbers_in_string_fields_are_refused(here: Path, value: str) -> None:
    (only,) = issues(BASE.replace("name: Shop", f"name: {value}"))
    assert "quote it" in only and len(only) < 400


@pytest.mark.parametrize(
    "reference", ["${A:-${B}}", "${A:-x${B}y}", "${A:-${B:-c}}", "pre ${A:-${B}} post"]
)
def test_nested_references_are_refused(here: Path, reference: str) -> None:
    (only,) = issues(BASE.replace("name: Shop", f"name: '{reference}'"), {"B": "b"})
    assert "nested variable references are not supported (${A:-${...}})" in only


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("name: Shop", f'name: Shop\n  icon: "gxupload:{HEX}\\n"'),
        ("name: Shop", f"icon: |\n    gxupload:{HEX}"),
        ("id: com.example.shop", 'id: "com.example.shop\\n"'),
        ("superapp_id: com.example.superapp", 'superapp_id: "com.example.superapp\\n"'),
        ("type: Native", 'type: Native\n  attributes: {"A\\n": x}'),
        ("id: com.example.shop", 'id: com.example.shop\n  labels: {"team\\n": x}'),
    ],
)
def test_ids_with_a_trailing_newline_are_refused(here: Path, old: str, new: str) -> None:
    assert issues(BASE.replace(old, new))


def test_a_service_url_with_a_trailing_newline_is_refused(here: Path) -> None:
    version = VERSION + '      service_url: "https://example.com/\\n"\n'
    (only,) = issues(BASE + version)
    assert "service_url must be an http(s) URL" in only


def test_a_surrogate_manifest_never_reaches_the_plan(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It passed validate and crashed plan with an internal error."""
    Path("m.yaml").write_text(BASE.replace("name: Shop", 'name: "\\ud800"'), encoding="utf-8")
    assert main(["plan", "m.yaml", "--sandbox"]) == 1
    out, err = capsys.readouterr()
    assert "m.yaml:6:9: contains U+D800" in out + err and "Internal error" not in err


# --- generated hostile input -------------------------------------------------------------

MAX_OUTPUT = 64 * 1024  # generous: 250 issues of at most ~700 characters would fit in 200 KB


def run_validate(data: bytes, *extra: str) -> tuple[int, str, str]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "m.yaml")
        path.write_bytes(data)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["validate", str(path), *extra])
        return code, out.getvalue(), err.getvalue()


def check_outcome(code: int, out: str, err: str) -> None:
    assert "Internal error" not in err and "Traceback" not in err, err
    assert len(out) + len(err) < MAX_OUTPUT
    if code == 0:
        assert out.startswith("OK: ")
        return
    assert code == 1, (code, out, err)
    lines = out.splitlines()
    assert lines
    for line in lines:
        assert ISSUE_LINE.match(line) or re.fullmatch(r"\.\.\. and \d+ more errors?", line), line


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=2000))
def test_any_bytes_give_ok_or_file_line_errors(data: bytes) -> None:
    check_outcome(*run_validate(data))


_FRAGMENTS = st.sampled_from(
    [
        "apiVersion: miniappcenter/v1\n", "kind: MiniApp\n", "metadata:\n", "  id: com.a.b\n",
        "spec:\n", "  name: x\n", "  superapp_id: com.a.s\n", "  type: Native\n", "  versions:\n",
        "    - code: '1'\n", "      compatibility: [", "1" * 5000, "]\n", "&a ", "*a", "*b ",
        "!!python/object:os.system ", "!x ", "!!set ", '"\\ud800"', '"\\udfff x"', "${A:-${B}}",
        "$${", "${", "}", "<<: ", "? ", ": ", "- ", "[", "{", "]", "}", ",", "\t", "\n", "---\n",
        "...\n", "#", "'", '"', "\\", "|", ">", "%YAML 1.1\n", "\ufeff", "\x00", "\x85", "0x1F",
        "1e999", ".inf", "~", "null", "yes", "2024-01-01", "  ", "    ", f"gxupload:{HEX}\n",
        "file:../../etc/passwd", "file:/dev/zero", "icon: ", "=",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(parts=st.lists(_FRAGMENTS, max_size=60))
def test_generated_hostile_yaml_gives_ok_or_file_line_errors(parts: list[str]) -> None:
    data = "".join(parts).encode("utf-8", "surrogatepass")
    for fmt in ("text", "json"):
        code, out, err = run_validate(data, "--format", fmt)
        if fmt == "text":
            check_outcome(code, out, err)
        else:
            assert code in (0, 1) and "Internal error" not in err
            document = json.loads(out)
            assert document["valid"] is (code == 0)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    value=st.text(
        st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from("\ud800\n"),
        max_size=40,
    )
)
def test_anything_that_loads_can_be_written_out(value: str) -> None:
    """What validate accepts, plan must be able to encode (a lone surrogate crashed it)."""
    quoted = json.dumps(value, ensure_ascii=True)  # YAML double-quoted: \\u escapes included
    text = BASE.replace("name: Shop", f"name: {quoted}").replace("type: Native", f"type: {quoted}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "m.yaml")
        path.write_text(text.replace("id: com.example.shop", f"id: {quoted}"), encoding="utf-8")
        try:
            apps = load_manifests([str(path)], {})
        except ManifestError as exc:
            for issue in exc.issues:
                str(issue).encode("utf-8")  # messages themselves are printable
                assert len(str(issue)) < 800
            return
    for item in apps:
        item.app.model_dump_json().encode("utf-8")


def test_too_many_documents_in_one_file_are_refused(here: Path) -> None:
    """Each document is checked on its own: 5,001 tiny ones would multiply the work."""
    from reconciler.manifest.files import MAX_DOCUMENTS

    text = "---\n" * MAX_DOCUMENTS + "---\na: 1\n"
    assert issues(text) == [
        f"m.yaml:{MAX_DOCUMENTS + 2}:1: more than {MAX_DOCUMENTS} documents in one file;"
        " split it into files"
    ]
