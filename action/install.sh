#!/usr/bin/env bash
# Install the reconciler into the job's Python.
#   INPUT_INSTALL  empty: this action's own source ($GITHUB_ACTION_PATH, i.e. the tag the
#                  workflow pinned); otherwise one pip requirement (a name==version, a URL).
set -euo pipefail

spec="${INPUT_INSTALL:-}"
if [ -z "$spec" ]; then
  spec="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set}"
fi
# One requirement, passed as one word: a value starting with '-' would be read by pip as an
# option (--index-url ...), so it is refused rather than passed on.
case "$spec" in
  -*) echo "::error title=miniapp-reconciler::install must be a pip requirement or 'none', not an option: $spec" >&2
      exit 64 ;;
esac
python -m pip install --quiet --disable-pip-version-check "$spec"
reconciler --version
