#!/usr/bin/env bash
# Install the reconciler into the job's Python.
#   INPUT_INSTALL  empty: this action's own source ($GITHUB_ACTION_PATH, i.e. the tag the
#                  workflow pinned); otherwise one pip requirement (a name==version, a URL).
set -euo pipefail
# Workflow-command data escaping (GitHub's rules): an input echoed into an annotation cannot
# start a line of its own, so it cannot issue another workflow command.
escape_data() {
  local s="${1//%/%25}"
  s="${s//$'\r'/%0D}"
  printf '%s' "${s//$'\n'/%0A}"
}

spec="${INPUT_INSTALL:-}"
if [ -z "$spec" ]; then
  spec="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set}"
fi
# One requirement, passed as one word: a value starting with '-' would be read by pip as an
# option (--index-url ...), so it is refused rather than passed on.
case "$spec" in
  -*) echo "::error title=miniapp-reconciler::install must be a pip requirement or 'none', not an option: $(escape_data "$spec")" >&2
      exit 64 ;;
esac
python -m pip install --quiet --disable-pip-version-check "$spec"
reconciler --version
