#!/usr/bin/env bash
# After apply (always, even a failed or cancelled one: a partial apply must not lose the
# records of what it did): commit this environment's state.json, and the journal a killed
# apply left, to the state branch and push, rebasing on another environment's push.
# Never the .lock file: between runners the mutex is the workflow's concurrency group.
#   INPUT_STATE_BRANCH, INPUT_ENVIRONMENT; APPLY_RC: the apply's exit code, for the message.
set -euo pipefail

branch="${INPUT_STATE_BRANCH:?}"
env_name="${INPUT_ENVIRONMENT:-production}"
checkout=.reconciler-state
if [ ! -e "$checkout/.git" ]; then
  echo "No state checkout: nothing to push."
  exit 0
fi
cd "$checkout"
export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-github-actions[bot]}"
export GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-41898282+github-actions[bot]@users.noreply.github.com}"
export GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-$GIT_AUTHOR_NAME}"
export GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-$GIT_AUTHOR_EMAIL}"

state="$env_name/state.json"
for f in "$state" "$state.journal"; do
  if [ -e "$f" ] || git ls-files --error-unmatch -- "$f" >/dev/null 2>&1; then
    git add -- "$f"
  fi
done
if git diff --cached --quiet; then
  echo "The state did not change."
  exit 0
fi
sha="${GITHUB_SHA:-local}"
git commit -q -m "apply $env_name: ${sha:0:12} (run ${GITHUB_RUN_ID:-local}, exit ${APPLY_RC:-none})" \
  -m "${GITHUB_SERVER_URL:-}/${GITHUB_REPOSITORY:-}/actions/runs/${GITHUB_RUN_ID:-}"
for attempt in 1 2 3 4 5; do
  if git push -q origin "HEAD:refs/heads/$branch"; then
    echo "State pushed to $branch."
    exit 0
  fi
  # Another environment's apply pushed meanwhile (each writes its own folder).
  echo "::warning title=miniapp-reconciler::push rejected (attempt $attempt); rebasing on the latest $branch"
  if git fetch -q origin "+refs/heads/$branch:refs/remotes/origin/$branch" && ! git rebase -q "refs/remotes/origin/$branch"; then
    git rebase --abort || true
    echo "::error title=miniapp-reconciler::the state conflicts with $branch; it is attached to this run as an artifact"
    exit 1
  fi
  sleep $((attempt * ${STATE_PUSH_BACKOFF_S:-3}))  # the tests set 0
done
echo "::error title=miniapp-reconciler::could not push the state; it is attached to this run as an artifact"
exit 1
