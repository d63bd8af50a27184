#!/usr/bin/env bash
# Check the state branch out into .reconciler-state/ (a git worktree of the job's checkout,
# so the checkout's persisted credentials serve fetch and push) and say where the state file
# is. Plan and drift only read it; apply creates the branch on its first run.
#   INPUT_STATE_BRANCH  branch name; empty: no state branch (RECONCILER_STATE or the default)
#   INPUT_ENVIRONMENT   folder of this environment's state.json on the branch
#   INPUT_COMMAND       validate needs no state; apply may create the branch
# Output: state-file (relative to the working directory), empty without a state branch.
set -euo pipefail
: "${GITHUB_OUTPUT:=/dev/null}"  # run by hand: no step outputs

branch="${INPUT_STATE_BRANCH:-}"
command="${INPUT_COMMAND:-plan}"
env_name="${INPUT_ENVIRONMENT:-production}"
checkout=.reconciler-state
# Workflow-command data escaping (GitHub's rules): an input echoed into an annotation cannot
# start a line of its own, so it cannot issue another workflow command.
escape_data() {
  local s="${1//%/%25}"
  s="${s//$'\r'/%0D}"
  printf '%s' "${s//$'\n'/%0A}"
}

if [ -z "$branch" ] || [ "$command" = validate ]; then
  echo "state-file=" >> "$GITHUB_OUTPUT"
  exit 0
fi
# Both become paths and refs: a name like ../x or "-f" must not.
if ! [[ "$env_name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || [[ "$env_name" == *..* ]]; then
  echo "::error title=miniapp-reconciler::environment must be letters, digits, '.', '_' or '-' (got: $(escape_data "$env_name"))" >&2
  exit 64
fi
if [[ "$branch" == -* ]] || ! git check-ref-format --branch "$branch" >/dev/null 2>&1; then
  echo "::error title=miniapp-reconciler::state-branch is not a valid branch name: $(escape_data "$branch")" >&2
  exit 64
fi
state_file="$checkout/$env_name/state.json"

if [ -e "$checkout/.git" ]; then
  # An earlier step of this job (another use of the action) checked it out already.
  echo "State branch $branch already checked out in $checkout."
else
  rc=0
  git ls-remote --exit-code --heads origin "$branch" >/dev/null || rc=$?
  case "$rc" in
    0) git fetch -q --depth=1 origin "+refs/heads/$branch:refs/remotes/origin/$branch"
       git worktree add -q --detach "$checkout" "refs/remotes/origin/$branch" ;;
    2) if [ "$command" = apply ]; then
         # An orphan branch with one empty commit: no history shared with the code.
         tree=$(git hash-object -w -t tree /dev/null)
         commit=$(git -c user.name="${GIT_COMMITTER_NAME:-github-actions[bot]}" \
           -c user.email="${GIT_COMMITTER_EMAIL:-41898282+github-actions[bot]@users.noreply.github.com}" \
           commit-tree "$tree" -m "Start the reconciler state branch")
         if ! git push -q origin "$commit:refs/heads/$branch"; then
           # another environment's first apply may have created it meanwhile
           git ls-remote --exit-code --heads origin "$branch" >/dev/null
         fi
         echo "::notice title=miniapp-reconciler::created the $branch branch"
         git fetch -q --depth=1 origin "+refs/heads/$branch:refs/remotes/origin/$branch"
         git worktree add -q --detach "$checkout" "refs/remotes/origin/$branch"
       else
         # apply has never run: plan or check against an empty state
         echo "::notice title=miniapp-reconciler::branch $branch does not exist yet: using an empty state"
       fi ;;
    *) # never guess "first run" on a network error: an empty state would re-create everything
       echo "::error title=miniapp-reconciler::cannot reach origin to read the $branch branch (git exit $rc)" >&2
       exit 1 ;;
  esac
fi
mkdir -p "$checkout/$env_name"
echo "state-file=$state_file" >> "$GITHUB_OUTPUT"
echo "State file: $state_file (branch $branch)"
