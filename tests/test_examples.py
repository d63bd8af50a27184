"""The GitOps kit in examples/ and .pre-commit-hooks.yaml, checked against the real CLI.

Every ``reconciler ...`` command line inside a GitLab job's ``script:`` (or a README's shell
block) must name a command that exists and use only its flags (checked on the typer app
itself, then parsed by click); the GitLab flow is then run for real, the same argv plus
``--sandbox``, against the demo fleet in manifests/, and must exit with the codes the
pipeline gates on. The GitHub workflows use the composite action (action.yml): their inputs,
the command lines the action makes of them and its steps are tested in tests/test_action.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.cli.main import main, typer_main_command
from reconciler.state import mac_records
from tests.action_harness import job_env, make_bin
from tests.fixtures_akana import EMAIL as AKANA_TEST_EMAIL
from tests.fixtures_akana import PASSWORD as AKANA_TEST_PASSWORD
from tests.fixtures_akana import RunningAkana
from tests.fixtures_sandbox import RunningSandbox

try:  # typer >= 0.24 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
GITHUB = sorted((EXAMPLES / "github").glob("*.yml"))
GITLAB = EXAMPLES / "gitlab" / ".gitlab-ci.yml"
CI_FILES = [*GITHUB, GITLAB]
README = EXAMPLES / "README.md"
MAIN_README = REPO / "README.md"
# The options table moved with the rest of the README into the docs site.
COMMANDS_PAGE = REPO / "docs" / "reference" / "commands.md"
DOC_PAGES = [
    MAIN_README, *sorted(p for p in (REPO / "docs").rglob("*.md") if p.name != "decisions.md")
]
HOOKS = REPO / ".pre-commit-hooks.yaml"
PLAN_MARKER = "<!-- miniapp-reconciler plan -->"
DRIFT_MARKER = "<!-- miniapp-reconciler drift -->"
# Commands the lead is writing while this kit is made: checked once they are registered.
PENDING = {"drift": "`reconciler drift` is not registered in the CLI yet (issue 6, lead)"}


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# --- a small shell scanner: simple commands, with the line each starts on ------------------

_KEYWORDS = {"if", "then", "else", "elif", "do", "while", "until", "!", "time", "{", "}"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class _Scanner:
    """Splits a POSIX shell script into simple commands (words after quote removal).

    Enough shell for CI scripts: quotes, backslash-newline continuations, comments, ``;``,
    ``&&``, ``||``, ``|``, subshells, redirections (``2> f`` drops both the fd and the target),
    here-documents (their bodies are data), and ``$(...)`` / backticks, whose commands are
    reported too (the enclosing word keeps a placeholder).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 0
        self.commands: list[tuple[int, list[str]]] = []
        self.heredocs: list[tuple[str, bool]] = []

    def _balanced(self, opener: str, closer: str) -> str:
        """Copy ``${...}`` or ``$((...))`` literally, from the current position."""
        depth, start = 0, self.i
        while self.i < len(self.text):
            char = self.text[self.i]
            self.line += char == "\n"
            self.i += 1
            if char == opener:
                depth += 1
            elif char == closer:
                depth -= 1
                if depth == 0:
                    break
        return self.text[start : self.i]

    def _substitution(self, closer: str) -> str:
        self.scan(closer)
        return "$(...)"

    def _dollar(self) -> str | None:
        """At a ``$``: consume an expansion, or return None for a plain dollar sign."""
        ahead = self.text[self.i + 1 : self.i + 3]
        if ahead == "((":
            self.i += 1
            return "$" + self._balanced("(", ")")
        if ahead.startswith("("):
            self.i += 2
            return self._substitution(")")
        if ahead.startswith("{"):
            self.i += 1
            return "$" + self._balanced("{", "}")
        return None

    def _double_quoted(self) -> str:
        out: list[str] = []
        self.i += 1
        while self.i < len(self.text):
            char = self.text[self.i]
            if char == '"':
                self.i += 1
                break
            if char == "\\" and self.text[self.i + 1 : self.i + 2] in ('"', "\\", "$", "`", "\n"):
                nxt = self.text[self.i + 1]
                self.line += nxt == "\n"
                out.append("" if nxt == "\n" else nxt)
                self.i += 2
                continue
            if char == "$" and (expansion := self._dollar()) is not None:
                out.append(expansion)
                continue
            if char == "`":
                self.i += 1
                out.append(self._substitution("`"))
                continue
            self.line += char == "\n"
            out.append(char)
            self.i += 1
        return "".join(out)

    def _skip_heredocs(self) -> None:
        for delimiter, strip_tabs in self.heredocs:
            while self.i < len(self.text):
                end = self.text.find("\n", self.i)
                end = len(self.text) if end < 0 else end
                body_line = self.text[self.i : end]
                self.i = min(end + 1, len(self.text))
                self.line += 1
                if (body_line.lstrip("\t") if strip_tabs else body_line) == delimiter:
                    break
        self.heredocs = []

    def scan(self, closer: str | None = None) -> None:
        words: list[str] = []
        word: list[str] | None = None
        start = self.line
        redirect: str | None = None  # the operator whose target the next word is
        depth = 0

        def end_word() -> None:
            nonlocal word, redirect, start
            if word is None:
                return
            text = "".join(word)
            word = None
            if redirect is not None:
                if redirect.startswith("<<") and redirect != "<<<":
                    self.heredocs.append((text, redirect == "<<-"))
                redirect = None
                return
            if not words:
                start = word_line
            words.append(text)

        def end_command() -> None:
            nonlocal words
            end_word()
            if words:
                self.commands.append((start, words))
            words = []

        word_line = self.line
        while self.i < len(self.text):
            char = self.text[self.i]
            if word is None:
                word_line = self.line
            if closer is not None and char == closer and depth == 0:
                self.i += 1
                end_command()
                return
            if char == "\\":
                nxt = self.text[self.i + 1 : self.i + 2]
                self.i += 2
                if nxt == "\n":
                    self.line += 1
                    continue
                word = [*(word or []), nxt]
            elif char == "'":
                end = self.text.find("'", self.i + 1)
                end = len(self.text) if end < 0 else end
                literal = self.text[self.i + 1 : end]
                self.line += literal.count("\n")
                word = [*(word or []), literal]
                self.i = end + 1
            elif char == '"':
                word = [*(word or []), self._double_quoted()]
            elif char == "$" and (expansion := self._dollar()) is not None:
                word = [*(word or []), expansion]
            elif char == "`":
                self.i += 1
                word = [*(word or []), self._substitution("`")]
            elif char == "#" and word is None:
                end = self.text.find("\n", self.i)
                self.i = len(self.text) if end < 0 else end
            elif char in " \t":
                end_word()
                self.i += 1
            elif char == "\n":
                end_command()
                self.i += 1
                self.line += 1
                self._skip_heredocs()
            elif char in ";&|":
                end_command()
                self.i += 2 if self.text[self.i : self.i + 2] in ("&&", "||", ";;", "|&") else 1
            elif char == "(":
                end_command()
                depth += 1
                self.i += 1
            elif char == ")":
                end_command()
                depth = max(depth - 1, 0)
                self.i += 1
            elif char in "<>":
                if word is not None and "".join(word).isdigit():
                    word = None  # `2>`: a file descriptor, not an argument
                end_word()
                for operator in ("<<<", "<<-", "<<", ">>", ">&", "<&", ">|", "<>", "<", ">"):
                    if self.text.startswith(operator, self.i):
                        break
                self.i += len(operator)
                redirect = operator
            else:
                word = [*(word or []), char]
                self.i += 1
        end_command()


def shell_commands(script: str) -> list[tuple[int, list[str]]]:
    """(0-based line, words) of every simple command of ``script``, in order found."""
    scanner = _Scanner(script)
    scanner.scan()
    return sorted(scanner.commands, key=lambda item: item[0])


def reconciler_argvs(script: str) -> list[tuple[int, list[str]]]:
    """The arguments of every ``reconciler ...`` command in ``script``."""
    found = []
    for line, words in shell_commands(script):
        rest = list(words)
        while rest and (rest[0] in _KEYWORDS or _ASSIGNMENT.match(rest[0])):
            rest.pop(0)
        if rest and rest[0] == "reconciler":
            found.append((line, rest[1:]))
    return found


# --- where the scripts are, with their lines -------------------------------------------------


def _get(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _first_line(node: yaml.ScalarNode) -> int:
    """1-based file line of the scalar's first content line."""
    return node.start_mark.line + (2 if node.style in ("|", ">") else 1)


def script_blocks(path: Path) -> Iterator[tuple[int, str]]:
    """(first line, shell text) of each run:/script: block of a workflow or GitLab CI file,
    or of each ```sh / ```bash block of a Markdown file, and of the ``$ `` lines of its
    ```console blocks (the rest of those is output; it is blanked to keep line numbers)."""
    if path.suffix == ".md":
        lines = path.read_text(encoding="utf-8").splitlines()
        fences = [i for i, line in enumerate(lines) if line.startswith("```")]
        for start, end in zip(fences[::2], fences[1::2], strict=True):
            body = lines[start + 1 : end]
            if lines[start] in ("```sh", "```bash"):
                yield start + 2, "\n".join(body)
            elif lines[start] == "```console":
                prompts = [x[2:] if x.startswith("$ ") else "" for x in body]
                yield start + 2, "\n".join(prompts)
        return
    root = yaml.compose(path.read_text(encoding="utf-8"))
    if path.name == ".gitlab-ci.yml":
        for _key, job in root.value:
            for key in ("before_script", "script", "after_script"):
                node = _get(job, key)
                items = node.value if isinstance(node, yaml.SequenceNode) else [node]
                for item in items:
                    if isinstance(item, yaml.ScalarNode):
                        yield _first_line(item), item.value
        return
    jobs = _get(root, "jobs")
    for _name, job in jobs.value if jobs is not None else []:
        steps = _get(job, "steps")
        for step in steps.value if steps is not None else []:
            run = _get(step, "run")
            if isinstance(run, yaml.ScalarNode):
                yield _first_line(run), run.value


@dataclass(frozen=True)
class Invocation:
    file: Path
    line: int
    argv: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{rel(self.file)}:{self.line}: reconciler {' '.join(self.argv)}"


def invocations(path: Path) -> list[Invocation]:
    found = []
    for first, text in script_blocks(path):
        for line, argv in reconciler_argvs(text):
            found.append(Invocation(path, first + line, tuple(argv)))
    return found


# --- the real CLI ----------------------------------------------------------------------------


def _option_names(command: Any) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for param in command.params:
        if param.param_type_name == "option":
            for name in [*param.opts, *param.secondary_opts]:
                names[name] = param
    return names


def _shown(path: list[str]) -> str:
    return "'" + " ".join(["reconciler", *path]) + "'"


# The root's options that answer and exit (--version; completion takes the shell's name).
_EAGER = {"--version": 0, "--show-completion": 1, "--install-completion": 1}


def cli_problems(argv: tuple[str, ...] | list[str]) -> list[str]:
    """Why ``reconciler ARGV`` would not parse: unknown command or flag, bad value, ..."""
    help_names = {"-h", "--help"}
    command: Any = typer_main_command()
    path: list[str] = []
    args = list(argv)
    while getattr(command, "commands", None):
        options = _option_names(command)
        while args and args[0].startswith("-"):
            name = args.pop(0).partition("=")[0]
            if name not in options and name not in help_names:
                return [f"unknown option {name} for {_shown(path)}"]
            if not path and name in _EAGER:  # answered before any subcommand is parsed
                return [] if len(args) == _EAGER[name] else [f"{name}: wrong arguments {args}"]
        if not args:
            return [f"{_shown(path)} needs a subcommand"]
        name = args.pop(0)
        if name not in command.commands:
            return [f"unknown command {_shown([*path, name])}"]
        command, path = command.commands[name], [*path, name]
    shown = _shown(path)
    options = _option_names(command)
    problems = []
    for word in args:
        if word == "--":
            break
        name = word.partition("=")[0]
        if word.startswith("-") and word != "-" and name not in options and name not in help_names:
            problems.append(f"unknown option {name} for {shown}")
    if problems:
        return problems
    try:  # click itself: values, arity, required arguments
        command.make_context(path[-1], args)
    except click_exceptions.ClickException as exc:
        return [f"{shown}: {exc.format_message()}"]
    return []


def is_registered(name: str) -> bool:
    return name in typer_main_command().commands


ALL_INVOCATIONS = [
    inv for path in [*CI_FILES, README, *DOC_PAGES] for inv in invocations(path)
]


# --- the checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CI_FILES, ids=rel)
def test_ci_file_parses_as_yaml(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    if path.suffix == ".yml" and path.parent.name == "github":
        assert data.get("on", data.get(True))  # YAML 1.1 reads a bare `on:` key as True
        assert data["jobs"] and all(job.get("steps") for job in data["jobs"].values())
    else:
        assert any(isinstance(job, dict) and "script" in job for job in data.values())


def test_every_flow_invokes_the_reconciler() -> None:
    # Guards the scanner: if it found nothing, the flag checks below would pass vacuously.
    # (GitHub: tests/test_action.py checks that the workflows use every command.)
    commands = {inv.argv[0] for inv in invocations(GITLAB) if inv.argv}
    assert commands == {"validate", "plan", "apply", "drift"}


@pytest.mark.parametrize("inv", ALL_INVOCATIONS, ids=lambda inv: f"{rel(inv.file)}:{inv.line}")
def test_invocation_uses_real_commands_and_flags(inv: Invocation) -> None:
    command = inv.argv[0] if inv.argv else ""
    if command in PENDING and not is_registered(command):
        pytest.skip(f"{PENDING[command]}: cannot check {inv.where}")
    problems = cli_problems(inv.argv)
    assert not problems, f"{inv.where}: " + "; ".join(problems)


def test_invocation_lines_point_at_the_command() -> None:
    for inv in ALL_INVOCATIONS:
        source = inv.file.read_text(encoding="utf-8").splitlines()[inv.line - 1]
        assert f"reconciler {inv.argv[0]}" in source, inv.where


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("pip install .\ngit push origin HEAD", []),
        ("reconciler validate manifests/", [(0, ["validate", "manifests/"])]),
        (
            "rc=0\nreconciler plan m/ --max-deletes 5 \\\n  --out p.json > plan.md 2> e || rc=$?",
            [(1, ["plan", "m/", "--max-deletes", "5", "--out", "p.json"])],
        ),
        ('out="$(reconciler drift m/ --format json)"', [(0, ["drift", "m/", "--format", "json"])]),
        ("x=$(echo 1; reconciler state list)", [(0, ["state", "list"])]),
        ('echo "run reconciler apply --bogus"; # reconciler plan --bogus', []),
        (
            "if ! reconciler apply --plan p.json; then exit 1; fi",
            [(0, ["apply", "--plan", "p.json"])],
        ),
        ("python3 - <<'PY'\nreconciler plan --bogus\nPY\nreconciler schema", [(3, ["schema"])]),
        (
            '[ "$rc" -eq 2 ] && reconciler drift m/ >> "$GITHUB_STEP_SUMMARY"',
            [(0, ["drift", "m/"])],
        ),
    ],
)
def test_scanner_finds_reconciler_commands(
    script: str, expected: list[tuple[int, list[str]]]
) -> None:
    assert reconciler_argvs(script) == expected


def test_unknown_commands_and_flags_are_reported_with_file_and_line(tmp_path: Path) -> None:
    workflow = tmp_path / "wf.yml"
    workflow.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: |\n          set -e\n          reconciler plan manifests/ --dry-run\n"
        "      - run: reconciler destroy manifests/\n"
        "      - run: reconciler plan manifests/ --max-deletes five\n"
        "      - run: reconciler state list --state s.json\n",
        encoding="utf-8",
    )
    found = invocations(workflow)
    assert [inv.line for inv in found] == [8, 9, 10, 11]
    assert cli_problems(found[0].argv) == ["unknown option --dry-run for 'reconciler plan'"]
    assert cli_problems(found[1].argv) == ["unknown command 'reconciler destroy'"]
    assert "--max-deletes" in cli_problems(found[2].argv)[0]
    assert cli_problems(found[3].argv) == []


# --- the pre-commit hook ---------------------------------------------------------------------


def _hook() -> dict[str, Any]:
    hooks = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    (hook,) = [h for h in hooks if h["id"] == "reconciler-validate"]
    return hook


def test_pre_commit_hook_runs_a_real_command() -> None:
    hook = _hook()
    assert hook["language"] == "python" and hook["pass_filenames"] is True
    argv = hook["entry"].split()
    assert argv[0] == "reconciler"
    # pre-commit appends the staged file names
    assert cli_problems([*argv[1:], "manifests/cafe/bakeries.yaml"]) == []


def test_pre_commit_hook_selects_manifest_yaml_only() -> None:
    files = re.compile(_hook()["files"])
    for path in ("manifests/cafe/bakeries.yaml", "manifests/a/b/c.yml"):
        assert files.search(path), path
    for path in ("examples/github/plan.yml", "manifests/README.md", "schema/x.yaml"):
        assert not files.search(path), path
    repo_manifests = [rel(p) for p in (REPO / "manifests").rglob("*.y*ml")]
    assert repo_manifests and all(files.search(p) for p in repo_manifests)


def test_pre_commit_hook_validates_the_demo_fleet(capsys: pytest.CaptureFixture[str]) -> None:
    argv = _hook()["entry"].split()[1:]
    files = sorted(str(p) for p in (REPO / "manifests").rglob("*.yaml"))
    assert main([*argv, *files]) == 0
    assert "OK: " in capsys.readouterr().out


def test_example_pre_commit_config_uses_the_hook() -> None:
    config = yaml.safe_load((EXAMPLES / "pre-commit-config.yaml").read_text(encoding="utf-8"))
    ids = [hook["id"] for repo in config["repos"] for hook in repo["hooks"]]
    assert "reconciler-validate" in ids


# --- the contract between the three workflows ------------------------------------------------


def _github(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / "github" / name).read_text(encoding="utf-8"))


def _gitlab() -> dict[str, Any]:
    return yaml.safe_load(GITLAB.read_text(encoding="utf-8"))


def _github_action_inputs(name: str) -> list[dict[str, Any]]:
    return [
        step["with"]
        for job in _github(name)["jobs"].values()
        for step in job["steps"]
        if "miniapp-reconciler@" in str(step.get("uses", ""))
    ]


def test_all_flows_share_one_state_file_on_the_state_branch() -> None:
    # the action keeps <environment>/state.json of its state-branch in .reconciler-state/
    paths = {
        f"{n}:{i}": f".reconciler-state/{inputs['environment']}/state.json"
        for n in ("plan.yml", "apply.yml", "drift.yml")
        for i, inputs in enumerate(_github_action_inputs(n))
        if inputs["command"] != "validate"
    }
    paths["gitlab"] = _gitlab()["variables"]["RECONCILER_STATE"]
    assert len(set(paths.values())) == 1, paths
    (state,) = set(paths.values())
    assert state.startswith(".reconciler-state/") and state.endswith("/state.json")


def test_github_permissions_are_least_privilege() -> None:
    plan, apply, drift = (_github(n)["permissions"] for n in ("plan.yml", "apply.yml", "drift.yml"))
    assert plan == {"contents": "read", "pull-requests": "write"}
    assert apply["contents"] == "write" and "pull-requests" not in apply
    assert drift == {"contents": "read"}


def test_github_applies_never_overlap_and_drift_runs_nightly() -> None:
    apply = _github("apply.yml")
    (env,) = {inputs["environment"] for inputs in _github_action_inputs("apply.yml")}
    assert apply["concurrency"] == {"group": f"reconciler-apply-{env}", "cancel-in-progress": False}
    assert apply["jobs"]["apply"]["if"] == "github.ref == 'refs/heads/main'"  # dispatch: main only
    triggers = _github("drift.yml")[True]
    assert triggers["schedule"] and "workflow_dispatch" in triggers


def test_gitlab_serializes_apply_and_fails_on_drift() -> None:
    ci = _gitlab()
    assert ci["reconciler-apply"]["resource_group"]
    drift = ci["reconciler-drift"]
    assert drift["artifacts"]["when"] == "always" and "drift.json" in drift["artifacts"]["paths"]
    assert "allow_failure" not in drift


# --- the flows, run for real against the sandbox ---------------------------------------------


@dataclass(frozen=True)
class Flow:
    validate: tuple[str, ...]
    plans: tuple[tuple[str, ...], ...]  # one per provider: a saved plan covers one provider
    apply: tuple[str, ...]  # the fresh plan-and-apply of a merge
    drift: tuple[str, ...]
    apply_saved: tuple[str, ...] | None  # apply --plan of a reviewed plan, where offered
    state: str


def _one(found: list[Invocation], command: str, pred: Any = lambda argv: True) -> tuple[str, ...]:
    (argv,) = [inv.argv for inv in found if inv.argv[0] == command and pred(inv.argv)]
    return argv


def flow(platform: str) -> Flow:
    assert platform == "gitlab"  # GitHub's flow runs through the action: tests/test_action.py
    plan = apply = drift = invocations(GITLAB)
    state = _gitlab()["variables"]["RECONCILER_STATE"]
    saved = [inv.argv for inv in apply if inv.argv[0] == "apply" and "--plan" in inv.argv]
    return Flow(
        validate=_one(plan, "validate"),
        plans=tuple(inv.argv for inv in plan if inv.argv[0] == "plan"),
        apply=_one(apply, "apply", lambda argv: "--plan" not in argv),
        drift=_one(drift, "drift"),
        apply_saved=saved[0] if saved else None,
        state=state,
    )


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout as CI has it: manifests/ in the working directory, no endpoint configured."""
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    (tmp_path / ".git").mkdir()  # a checkout: its state and sandbox live at its root
    monkeypatch.chdir(tmp_path)
    for var in (
        "MAC_BASE_URL", "MAC_API_TOKEN", "MAC_SANDBOX_DB", "RECONCILER_STATE",
        "AKANA_BASE_URL", "AKANA_EMAIL", "AKANA_PASSWORD", "AKANA_SANDBOX_DB",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> tuple[int, str, str]:
    code = main([*argv, "--sandbox"])
    out, err = capsys.readouterr()
    return code, out, err


def plan_and_apply(fleet: Path, capsys: pytest.CaptureFixture[str], steps: Flow) -> Path:
    assert main(list(steps.validate)) == 0, capsys.readouterr()  # validate talks to no API
    capsys.readouterr()
    # the demo fleet spans both providers: one saved plan each, together all of it
    assert sorted(argv[argv.index("--provider") + 1] for argv in steps.plans) == [
        "akana", "miniappcenter"
    ]
    for plan in steps.plans:
        code, out, err = run(capsys, plan)
        assert code == 2, err  # --detailed-exitcode on a fresh sandbox: changes
        assert out.startswith(PLAN_MARKER)  # how the PR comment / MR note is found again
        saved_at = fleet / plan[plan.index("--out") + 1]  # the artifact
        saved = json.loads(saved_at.read_text(encoding="utf-8"))
        assert saved["format_version"] == 2 and saved["summary"]["create"] > 0
        provider = plan[plan.index("--provider") + 1]
        assert {c["provider"] for c in saved["changes"]} == {provider}
    code, out, err = run(capsys, steps.apply)
    assert code == 0, out + err
    state = fleet / steps.state
    assert mac_records(json.loads(state.read_text(encoding="utf-8")))
    # what the commit step adds: the state, no journal left, and never a lock
    assert sorted(p.name for p in state.parent.iterdir()) == ["state.json"]
    return state


@pytest.mark.parametrize("platform", ["gitlab"])
def test_flow_plan_then_apply_converges(
    platform: str, fleet: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = flow(platform)
    monkeypatch.setenv("RECONCILER_STATE", steps.state)
    state = plan_and_apply(fleet, capsys, steps)
    assert set(json.loads(state.read_text(encoding="utf-8"))["providers"]) >= {
        "miniappcenter", "akana"
    }
    # the next pull request's plans, from the state the apply job pushed: nothing to do
    for plan in steps.plans:
        code, out, err = run(capsys, plan)
        assert code == 0, out + err
        assert out.startswith(PLAN_MARKER)


@pytest.mark.parametrize("platform", ["gitlab"])
def test_flow_drift_is_clean_after_apply_and_fails_after_an_outside_change(
    platform: str, fleet: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = flow(platform)
    monkeypatch.setenv("RECONCILER_STATE", steps.state)
    plan_and_apply(fleet, capsys, steps)
    if not is_registered("drift"):
        pytest.skip(f"{PENDING['drift']}: plan and apply passed, drift not run")
    code, out, err = run(capsys, steps.drift)
    assert code == 0, out + err  # in sync: the only code the drift jobs pass on
    assert out.startswith(DRIFT_MARKER)  # drift.md, the run summary
    assert json.loads((fleet / "drift.json").read_text(encoding="utf-8"))["in_sync"] is True
    from reconciler.providers.miniappcenter.sandbox import SandboxStore

    with SandboxStore(fleet / ".reconciler" / "sandbox.db") as store:  # a backoffice edit
        store.update_miniapp("com.genexus.verdant.coffeemuffins", {"name": "Edited outside"})
    code, out, err = run(capsys, steps.drift)
    assert code == 2, err  # fails the job
    assert "Edited outside" in out  # the Markdown report people read
    report = json.loads((fleet / "drift.json").read_text(encoding="utf-8"))  # the artifact
    assert report["in_sync"] is False and "Edited outside" in json.dumps(report)


# --- the main README's per-command options table ----------------------------------------------


def _readme_options_table() -> dict[str, set[str]]:
    rows: dict[str, set[str]] = {}
    text = COMMANDS_PAGE.read_text(encoding="utf-8")
    table = text.split("| command | options |", 1)[1].split("\n\n", 1)[0]
    for line in table.splitlines()[2:]:
        command = re.match(r"^\| `([a-z-]+)` \|", line)
        assert command, line
        rows[command.group(1)] = set(re.findall(r"`(--[a-z-]+)", line))
    return rows


def test_readme_lists_each_commands_options_exactly() -> None:
    """README's options table is the CLI's: no option shown where it does not exist."""
    rows = _readme_options_table()
    commands = typer_main_command().commands
    assert set(rows) == {"validate", "plan", "apply", "drift", "import"}
    for name, shown in rows.items():
        # --help and -v/--verbose are on every command (docs/how-to/cli-habits.md), not per row
        every = {"--help", "--verbose"}
        real = {o for o in _option_names(commands[name]) if o.startswith("--")} - every
        assert shown == real, (name, sorted(shown ^ real))
    # the case: `apply` has neither Markdown nor --out
    assert "--out" not in rows["apply"]
    apply_row = next(x for x in COMMANDS_PAGE.read_text().splitlines() if x.startswith("| `apply`"))
    assert "markdown" not in apply_row


# --- the GitLab plan job's own shell, over real HTTP ------------------------------------------


def _gitlab_plan_script(work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The plan job's script after install and state checkout, up to (not) the MR note: one
    bash -e shell, as GitLab runs a job's lines."""
    script = _gitlab()["reconciler-plan"]["script"]
    start = next(i for i, item in enumerate(script) if item.startswith("reconciler validate"))
    body = [item for item in script[start:] if "urllib.request" not in item]  # not the note
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", "\n".join(body)],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.fixture
def gitlab_job(
    tmp_path: Path, sandbox_server: RunningSandbox, akana: RunningAkana
) -> tuple[Path, dict[str, str]]:
    """A job's checkout of the demo fleet and its environment: both sandboxes over HTTP, their
    endpoints and credentials as the project's CI/CD variables."""
    work = tmp_path / "work"
    shutil.copytree(REPO / "manifests", work / "manifests")
    env = job_env(make_bin(tmp_path / "bin"), tmp_path)
    env.update(
        MAC_BASE_URL=sandbox_server.base_url,
        MAC_API_TOKEN=sandbox_server.token,
        AKANA_BASE_URL=akana.base_url,
        AKANA_EMAIL=AKANA_TEST_EMAIL,
        AKANA_PASSWORD=AKANA_TEST_PASSWORD,
        RECONCILER_STATE=str(work / ".reconciler-state" / "production" / "state.json"),
        CI_COMMIT_SHORT_SHA="0123456",
        CI_JOB_ID="42",
        CI_JOB_URL="https://gitlab.example/job/42",
    )
    return work, env


def test_gitlab_plan_job_notes_each_providers_plan(gitlab_job: tuple[Path, dict[str, str]]) -> None:
    work, env = gitlab_job
    done = _gitlab_plan_script(work, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The plan has changes" in done.stdout
    assert (work / "plan.rc").read_text().strip() == "2"
    note = (work / "comment.md").read_text(encoding="utf-8")
    assert note.startswith(PLAN_MARKER + "\n") and note.count(PLAN_MARKER) == 1
    assert "com.genexus.verdant.coffeemuffins" in note and "Payments Gateway" in note
    for provider in ("miniappcenter", "akana"):
        saved = json.loads((work / f"plan-{provider}.json").read_text(encoding="utf-8"))
        assert {c["provider"] for c in saved["changes"]} == {provider}  # the artifacts
    assert AKANA_TEST_PASSWORD not in note + done.stdout + done.stderr


def test_gitlab_plan_job_fails_when_one_provider_cannot_plan(
    gitlab_job: tuple[Path, dict[str, str]],
) -> None:
    work, env = gitlab_job
    done = _gitlab_plan_script(work, {**env, "AKANA_PASSWORD": "not-the-password"})
    assert done.returncode == 1, done.stdout + done.stderr
    note = (work / "comment.md").read_text(encoding="utf-8")
    assert "### akana plan failed (exit 1)" in note
    assert "com.genexus.verdant.coffeemuffins" in note  # the other provider's plan is kept
    assert "not-the-password" not in note + done.stdout + done.stderr
