"""Addresses on the command line: `state show` / `state rm` take any address `state list`
prints (and a bare key), with a did-you-mean on a miss; `--target` takes addresses and bare
keys alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.state import FileStateStore

REPO = Path(__file__).resolve().parent.parent
AKANA = {"id": "a-1", "protect": False, "labels": {}, "fields": {}, "versions": {}}


@pytest.fixture
def state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state holding one mini app and one Akana app (no API is called by `state`)."""
    import asyncio

    from reconciler.state import AppRecord

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILER_STATE", raising=False)
    path = tmp_path / "state.json"
    store = FileStateStore(path)
    with store.lock("test"):
        state = store.load("http://mac.test/api")
        state.apps["com.example.shop"] = AppRecord()
        store.save(state)
        asyncio.run(store.record_resource("akana", "akana_app", "Payments Gateway", AKANA))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_state_show_takes_every_address_state_list_prints(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "state", "list", "--state", str(state_file))
    assert code == 0
    printed = [line.split("\t")[0] for line in out.splitlines()]
    assert printed == ["com.example.shop", "akana_app[Payments Gateway]"]
    for text in [*printed, "miniapp[com.example.shop]"]:
        code, out, err = _run(capsys, "state", "show", text, "--state", str(state_file))
        assert (code, err) == (0, ""), text
        assert out.startswith("{"), text


@pytest.mark.parametrize(
    ("asked", "meant"),
    [
        ("akana_app[Payments Gatway]", "akana_app[Payments Gateway]"),
        ("miniapp[Payments Gateway]", "akana_app[Payments Gateway]"),
        ("com.example.shp", "com.example.shop"),
    ],
)
def test_a_miss_says_did_you_mean(
    state_file: Path, capsys: pytest.CaptureFixture[str], asked: str, meant: str
) -> None:
    code, out, err = _run(capsys, "state", "show", asked, "--state", str(state_file))
    assert code == 1 and out == ""
    assert err.strip() == f"Error: {asked} is not in the state; did you mean {meant}?"


def test_a_miss_with_nothing_close_points_at_state_list(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "state", "show", "zzzzzz", "--state", str(state_file))
    assert code == 1
    assert "`reconciler state list` prints what it holds" in err


def test_state_rm_takes_the_mini_app_address(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "state", "rm", "miniapp[com.example.shop]",
                        "--state", str(state_file))  # fmt: skip
    assert code == 0, err
    assert "com.example.shop" not in FileStateStore(state_file).read().apps


@pytest.fixture
def akana_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("RECONCILER_STATE", "MAC_SANDBOX_DB", "AKANA_BASE_URL", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    shutil.copytree(REPO / "manifests" / "akana", tmp_path / "akana")
    return tmp_path


@pytest.mark.parametrize("target", ["akana_app[Payments Gateway]", "Payments Gateway"])
def test_target_takes_an_address_or_a_bare_key(
    akana_fleet: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    code, out, err = _run(capsys, "plan", "akana", "--sandbox", "--no-color",
                          "--target", target)  # fmt: skip
    assert code == 0, err
    assert "akana_app[Payments Gateway]" in out
    assert "Payments Reports" not in out


def test_target_address_of_an_unknown_key_is_still_refused(
    akana_fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "plan", "akana", "--sandbox", "--target",
                        "akana_app[Nope]")  # fmt: skip
    assert code == 1
    assert "Nope" in err and "Traceback" not in err
