"""Post the plan as ONE pull-request comment, or update the one posted before, with `gh api`.

The comment is found again by a hidden first line naming the environment,
``<!-- miniapp-reconciler action: production -->`` (so two environments' plans never
overwrite each other), and only among comments written by ``INPUT_COMMENT_AUTHOR`` (the
identity of the token: a marker pasted by someone else is never taken over).

Environment: COMMENT_FILE (the body), INPUT_ENVIRONMENT, INPUT_PROVIDER, INPUT_COMMENT_AUTHOR,
GITHUB_REPOSITORY, GITHUB_EVENT_PATH (the pull request number), GH_TOKEN (read by gh).
Standard library only; `gh` is on every GitHub-hosted runner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

LIMIT = 65000  # GitHub refuses comments over 65,536 characters
TRUNCATED = "\n\n... truncated: the full plan is in the JSON report attached to this run.\n"


def marker(env: str) -> str:
    return f"<!-- miniapp-reconciler action: {env} -->"


def pull_request_number(event_path: str) -> int | None:
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    number = (event.get("pull_request") or {}).get("number") if isinstance(event, dict) else None
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def body_for(text: str, env: str) -> str:
    body = f"{marker(env)}\n{text}"
    if len(body) > LIMIT:
        body = body[:LIMIT] + TRUNCATED
    return body


def json_values(text: str) -> list[Any]:
    """`gh api --paginate` prints one JSON array per page, back to back: read them all."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return values
        value, i = decoder.raw_decode(text, i)
        values.append(value)


def _as_list(page: Any) -> list[Any]:
    return page if isinstance(page, list) else [page]


def gh(*args: str) -> str:
    done = subprocess.run(["gh", "api", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        # gh's own message (HTTP status and GitHub's reason); it never prints the token
        raise RuntimeError(f"gh api {args[0]} ... failed: {done.stderr.strip()[:2000]}")
    return done.stdout


def find_previous(comments: list[Any], env: str, author: str) -> int | None:
    for comment in comments:
        if not isinstance(comment, dict):
            continue
        login = (comment.get("user") or {}).get("login")
        if login == author and str(comment.get("body") or "").startswith(marker(env)):
            comment_id = comment.get("id")
            if isinstance(comment_id, int):
                return comment_id
    return None


def main() -> int:
    env = os.environ.get("INPUT_ENVIRONMENT") or "production"
    # One comment per environment, and per provider when the plan covers one (a mixed fleet
    # saves one plan per provider): marked "production/akana". run.sh checked the name.
    provider = os.environ.get("INPUT_PROVIDER") or ""
    if provider:
        env = f"{env}/{provider}"
    author = os.environ.get("INPUT_COMMENT_AUTHOR") or "github-actions[bot]"
    repo = os.environ.get("GITHUB_REPOSITORY", "")
    number = pull_request_number(os.environ.get("GITHUB_EVENT_PATH", ""))
    if number is None:
        print("Not a pull request event: no plan comment.")
        return 0
    text = Path(os.environ["COMMENT_FILE"]).read_text(encoding="utf-8")
    body = body_for(text, env)
    try:
        pages = gh("--paginate", f"repos/{repo}/issues/{number}/comments?per_page=100")
        comments = [
            c for page in json_values(pages) for c in (page if isinstance(page, list) else [page])
        ]
        previous = find_previous(comments, env, author)
        with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8", delete=False) as f:
            json.dump({"body": body}, f)  # --input: the body is never on a command line
        try:
            if previous is not None:
                gh(
                    "--method",
                    "PATCH",
                    f"repos/{repo}/issues/comments/{previous}",
                    "--input",
                    f.name,
                )
                print(f"Updated the plan comment {previous} on #{number}.")
            else:
                gh("--method", "POST", f"repos/{repo}/issues/{number}/comments", "--input", f.name)
                print(f"Posted the plan comment on #{number}.")
        finally:
            os.unlink(f.name)
    except (RuntimeError, ValueError) as exc:
        print(f"::error title=miniapp-reconciler::could not post the plan comment: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
