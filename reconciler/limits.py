"""Defaults that `--help` shows, in a module that imports nothing: the CLI imports it at
start-up, before any command runs (D45). The modules that use them re-export them."""

from __future__ import annotations

# Version ids read, at most, by one probe in one run (`--probe-window N`): see recover.py.
DEFAULT_PROBE_WINDOW = 256
