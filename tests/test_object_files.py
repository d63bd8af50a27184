"""Images and version metadata from files: uploaded by apply right before use (upload ids
expire minutes after the upload), compared by content, never re-uploaded when unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.providers.miniappcenter.sandbox import SandboxStore

MANIFEST = """\
apiVersion: miniappcenter/v1
kind: MiniApp
metadata:
  id: com.genexus.verdant.coffeemuffins
spec:
  name: Coffee
  superapp_id: com.genexus.verdantbank
  type: Native
  icon: {icon}
  versions:
    - code: "1.0"
      platform_id: iOS
      metadata: file:bundle/metadata.json
      main_name: start
      main_type: Panel
"""


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("MAC_BASE_URL", "MAC_API_TOKEN", "RECONCILER_STATE", "MAC_SANDBOX_DB"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / ".git").mkdir()  # a repository: its state and sandbox live at its root
    (tmp_path / "m" / "icons").mkdir(parents=True)
    (tmp_path / "m" / "bundle").mkdir()
    (tmp_path / "m" / "icons" / "coffee.png").write_bytes(b"\x89PNG first")
    (tmp_path / "m" / "bundle" / "metadata.json").write_bytes(b'{"v": 1}')
    (tmp_path / "m" / "app.yaml").write_text(MANIFEST.format(icon="file:icons/coffee.png"))
    return tmp_path


def objects(work: Path) -> int:
    with SandboxStore(work / ".reconciler" / "sandbox.db") as store:
        return store.count_objects()


def plan_json(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = main(["plan", "m", "--sandbox", "--format", "json", "--detailed-exitcode"])
    return code, json.loads(capsys.readouterr().out)


def test_files_are_uploaded_once_and_compared_by_content(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["apply", "m", "--sandbox", "--auto-approve"]) == 0
    assert objects(work) == 2  # icon and version metadata, uploaded right before use
    with SandboxStore(work / ".reconciler" / "sandbox.db") as store:
        icon = store.get_miniapp("com.genexus.verdant.coffeemuffins")["icon"]
        stored = store.get_object(icon.removeprefix("gxupload:"))
    assert stored is not None and stored.data == b"\x89PNG first"
    code, plan = plan_json(capsys)
    assert code == 0 and plan["changes"] == []
    # unchanged files: a second apply uploads nothing
    assert main(["apply", "m", "--sandbox", "--auto-approve"]) == 0
    assert objects(work) == 2
    # new content: one update, one new upload
    (work / "m" / "icons" / "coffee.png").write_bytes(b"\x89PNG second")
    code, plan = plan_json(capsys)
    changes = plan["changes"]
    assert code == 2 and isinstance(changes, list)
    assert [(c["kind"], c["action"], list(c["after"])) for c in changes] == [
        ("miniapp", "update", ["icon"])
    ]
    assert main(["apply", "m", "--sandbox", "--auto-approve"]) == 0
    assert objects(work) == 3
    assert plan_json(capsys)[0] == 0


def test_a_file_changed_after_the_plan_is_refused(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "m", "--sandbox", "--out", "plan.json"]) == 0
    (work / "m" / "icons" / "coffee.png").write_bytes(b"\x89PNG edited after review")
    capsys.readouterr()
    code = main(["apply", "--plan", "plan.json", "--sandbox", "--auto-approve"])
    out = capsys.readouterr().out
    assert code == 1  # the app create failed: nothing else could be written
    assert "changed since the plan was made" in out
    assert objects(work) == 0


@pytest.mark.parametrize(
    ("icon", "message"),
    [
        ("file:icons/missing.png", "cannot read"),
        ("https://cdn.example.com/icon.png", "must be an upload object id"),
        ("gxupload:XYZ", "must be an upload object id"),
    ],
)
def test_bad_object_values_point_at_the_line(
    work: Path, capsys: pytest.CaptureFixture[str], icon: str, message: str
) -> None:
    (work / "m" / "app.yaml").write_text(MANIFEST.format(icon=icon))
    capsys.readouterr()
    assert main(["validate", "m"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("m/app.yaml:9:9: spec.icon: ")
    assert message in out
