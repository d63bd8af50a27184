"""``python -m reconciler``: the same CLI as the ``reconciler`` console script (useful where
the script's folder is not on PATH, or to pick the interpreter explicitly)."""

import sys

from reconciler.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
