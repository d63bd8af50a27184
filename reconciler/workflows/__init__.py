"""The workflows behind the commands (plan, apply, drift, import): load and narrow the
manifests, choose who takes part, open the endpoints and the state, plan, confirm, execute
and record. The CLI parses options, calls one workflow, prints what it returns and maps it to
an exit code; a workflow never prints: it tells a :class:`~reconciler.workflows.report.Reporter`
the CLI passes in, and raises :class:`~reconciler.errors.ReconcilerError` (docs/decisions.md
D107).

Imported inside the command functions, never at the CLI's start-up, so ``--help`` stays fast.
"""
