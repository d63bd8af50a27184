#!/usr/bin/env bash
# Run one reconciler command the way CI gates on it, and leave its reports behind:
#   the Markdown in the job summary, the JSON (+ Markdown) in a folder for the artifact,
#   the plan's PR comment body, and the exit code and counts as step outputs.
# Inputs (environment): INPUT_COMMAND, INPUT_PATHS, INPUT_ARGS, INPUT_ENVIRONMENT,
#   INPUT_PROVIDER, INPUT_FAIL_ON_DRIFT, STATE_FILE (from state-checkout.sh; empty: leave
#   RECONCILER_STATE).
# The endpoints and secrets (MAC_BASE_URL, MAC_API_TOKEN, AKANA_BASE_URL, AKANA_EMAIL,
# AKANA_PASSWORD) come from the caller's step environment; none is ever printed here.
#
# No input is ever evaluated by a shell: INPUT_PATHS and INPUT_ARGS are split on whitespace
# into words by `read -a` (no globbing, no quotes, no $(...)) and passed as argv.
set -euo pipefail
: "${GITHUB_OUTPUT:=/dev/null}"  # run by hand: no step outputs
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Workflow-command data escaping (GitHub's rules): an input echoed into an annotation cannot
# start a line of its own, so it cannot issue another workflow command.
escape_data() {
  local s="${1//%/%25}"
  s="${s//$'\r'/%0D}"
  printf '%s' "${s//$'\n'/%0A}"
}

fail_usage() {
  echo "::error title=miniapp-reconciler::$(escape_data "$1")" >&2
  echo "exit-code=64" >> "$GITHUB_OUTPUT"
  echo "outcome=failed" >> "$GITHUB_OUTPUT"
  exit 64
}

command="${INPUT_COMMAND:-plan}"
env_name="${INPUT_ENVIRONMENT:-production}"
provider="${INPUT_PROVIDER:-}"
fail_on_drift="${INPUT_FAIL_ON_DRIFT:-true}"
fail_on_drift="${fail_on_drift,,}"  # YAML True / TRUE
case "$command" in
  validate|plan|apply|drift) ;;
  *) fail_usage "command must be validate, plan, apply or drift (got: $command)" ;;
esac
case "$fail_on_drift" in
  true|false) ;;
  *) fail_usage "fail-on-drift must be true or false (got: $fail_on_drift)" ;;
esac
if ! [[ "$env_name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || [[ "$env_name" == *..* ]]; then
  fail_usage "environment must be letters, digits, '.', '_' or '-' (got: $env_name)"
fi
# A provider name only (the CLI says which ones exist): it also names the report folder,
# the artifact and the PR comment's marker.
if [ -n "$provider" ] && ! [[ "$provider" =~ ^[a-z][a-z0-9-]{0,39}$ ]]; then
  fail_usage "provider must be a provider name such as miniappcenter, akana or rest (got: $provider)"
fi

paths=()
args=()
IFS=$' \t\n' read -r -d '' -a paths < <(printf '%s\0' "${INPUT_PATHS:-}")
IFS=$' \t\n' read -r -d '' -a args < <(printf '%s\0' "${INPUT_ARGS:-}")
# The action owns the output format and the report files; a second --format would silently
# win over them (the last one counts) and break the comment, summary and outputs.
for word in "${args[@]}"; do
  case "${word%%=*}" in
    --format|--out|--detailed-exitcode)
      fail_usage "args must not set $word: the action sets the format and the report files" ;;
    --provider)
      fail_usage "args must not set $word: use the action's provider input (it also names the artifact and the PR comment)" ;;
  esac
done
if [ -n "$provider" ]; then
  args+=(--provider "$provider")
fi

if [ -n "${STATE_FILE:-}" ]; then
  export RECONCILER_STATE="$STATE_FILE"
fi
export NO_COLOR=1

report_name="$command${provider:+-$provider}"
out_dir="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/miniapp-reconciler/$env_name/$report_name"
rm -rf -- "$out_dir"
mkdir -p -- "$out_dir"
md="$out_dir/$command.md"
json="$out_dir/$command.json"
err="$out_dir/$command.err"

# stderr goes both to the log, live, and to a file (for the comment when the plan fails):
# through a pipe into tee, whose end the pipeline waits for (a process substitution is not
# waited for, and could still be writing the file while it is checked below).
# What the tool prints quotes manifests (names, values, file paths): while it runs, no line
# of it is read as a workflow command.
stop_token="miniapp-reconciler-$RANDOM$RANDOM$RANDOM"
echo "::stop-commands::$stop_token"
rc=0
set +e
case "$command" in
  validate)
    reconciler validate "${args[@]}" -- "${paths[@]}"
    rc=$?
    ;;
  plan)
    reconciler plan --format markdown --out "$json" --detailed-exitcode "${args[@]}" \
      -- "${paths[@]}" 2>&1 > "$md" | tee "$err" >&2
    rc=${PIPESTATUS[0]}
    ;;
  apply)
    reconciler apply --auto-approve --format json "${args[@]}" \
      -- "${paths[@]}" 2>&1 > "$json" | tee "$err" >&2
    rc=${PIPESTATUS[0]}
    ;;
  drift)
    reconciler drift --format markdown --out "$json" "${args[@]}" \
      -- "${paths[@]}" 2>&1 > "$md" | tee "$err" >&2
    rc=${PIPESTATUS[0]}
    ;;
esac
set -e
echo "::$stop_token::"

if [ "$command" != validate ]; then
  # A manifest may read ${VARS} from the environment: never publish a secret. The names are
  # checked one by one: only the NAME of the one found is printed, never its value.
  for secret_name in MAC_API_TOKEN AKANA_PASSWORD; do
    secret="${!secret_name:-}"
    if [ -n "$secret" ] && grep -qsF -e "$secret" "$md" "$json" "$err"; then
      rm -f -- "$md" "$json"
      echo "refusing to publish the $command report: its output contains $secret_name (does a manifest reference it?)" > "$err"
      echo "::error title=miniapp-reconciler::$(cat "$err")"
      rc=1
      break
    fi
  done
fi

case "$command:$rc" in
  validate:0) outcome=valid ;;
  plan:0) outcome=no-changes ;;
  plan:2) outcome=changes ;;
  apply:0) outcome=applied ;;
  apply:3) outcome=partly-applied ;;
  apply:130) outcome=interrupted ;;
  drift:0) outcome=in-sync ;;
  drift:2) outcome=drift ;;
  *) outcome=failed ;;
esac

{
  echo "exit-code=$rc"
  echo "outcome=$outcome"
  echo "provider=$provider"
  echo "artifact=reconciler-$report_name"
  if [ "$command" != validate ]; then
    echo "dir=$out_dir"
    if [ -s "$json" ]; then echo "json=$json"; fi
    python3 "$here/report.py" outputs "$command" "$json"
  fi
} >> "$GITHUB_OUTPUT"

# The Markdown for people: the job summary (and, for plan, the PR comment).
if [ "$command" = apply ]; then
  python3 "$here/report.py" apply-markdown "$json" "$rc" "$env_name" > "$md"
fi
if [ "$command" = validate ]; then
  report="$out_dir/validate.md"
  if [ "$rc" -eq 0 ]; then
    echo "### Mini App Center manifests ($env_name) are valid" > "$report"
  else
    echo "### Mini App Center manifests ($env_name) are NOT valid (exit $rc): see the job log" > "$report"
  fi
elif [ -s "$md" ] && { [ "$outcome" != failed ] || [ "$command" = apply ]; }; then
  report="$md"
else
  report="$out_dir/failed.md"
  {
    echo "<!-- miniapp-reconciler $command -->"
    echo "### Mini App Center $command ($env_name) failed (exit $rc)"
    if [ -s "$err" ] || [ -s "$md" ]; then
      echo
      echo '```'
      # files, not a pipe: `head` closing a pipe early would fail the step under pipefail
      if [ -s "$err" ]; then head -c 30000 -- "$err"; fi
      if [ -s "$md" ]; then head -c 30000 -- "$md"; fi
      echo '```'
    fi
  } > "$report"
fi
if [ "$command" != validate ] && [ -s "$md" ]; then
  echo "markdown=$md" >> "$GITHUB_OUTPUT"
fi
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  # GitHub accepts up to 1 MiB of summary per step
  head -c 1000000 -- "$report" >> "$GITHUB_STEP_SUMMARY"
  echo >> "$GITHUB_STEP_SUMMARY"
fi
if [ "$command" = plan ]; then
  sha="${GITHUB_SHA:-local}"
  comment="$out_dir/comment.md"
  {
    cat -- "$report"
    echo
    echo "<sub>Commit ${sha:0:7}, [run ${GITHUB_RUN_ID:-}](${GITHUB_SERVER_URL:-}/${GITHUB_REPOSITORY:-}/actions/runs/${GITHUB_RUN_ID:-}) (the JSON plan is attached to the run).</sub>"
  } > "$comment"
  echo "comment=$comment" >> "$GITHUB_OUTPUT"
fi
# The log shows what the summary shows. The report quotes manifest values: keep a line of it
# from being read as a workflow command (::add-mask::, ::error::, ...).
echo "::stop-commands::$stop_token"
cat -- "$report"
echo "::$stop_token::"

case "$outcome" in
  valid) echo "Manifests are valid." ;;
  no-changes) echo "No changes." ;;
  changes) echo "The plan has changes." ;;
  applied) echo "All changes applied." ;;
  in-sync) echo "In sync." ;;
  partly-applied)
    echo "::error title=Partly applied::Some changes failed (see above). Every change that succeeded is recorded in the state; fix the cause and re-run: it plans again and applies only the rest." ;;
  interrupted)
    echo "::error title=Interrupted::The apply was interrupted. Every completed write is recorded in the state; re-run to finish." ;;
  drift)
    if [ "$fail_on_drift" = true ]; then
      echo "::error title=Drift::the live resources differ from the manifests: see the job summary and the JSON report. Re-apply to restore the manifests, or change the manifests to adopt the live values."
    else
      echo "::warning title=Drift::the live resources differ from the manifests (fail-on-drift: false)."
      exit 0
    fi ;;
  failed) echo "::error title=miniapp-reconciler $command failed::reconciler $command exited $rc (see the log above)." ;;
esac
case "$outcome" in
  valid|no-changes|changes|applied|in-sync) exit 0 ;;
  *) exit "$rc" ;;
esac
