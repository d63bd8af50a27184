"""What the registry knows of a provider before importing it: a :class:`ProviderDescriptor`.

A descriptor is plain data (its module imports nothing but the standard library), so that the
registry can list every provider, its manifest kinds and its root kind without importing the
provider itself: a run imports only the providers its manifests, its state or its saved plan
name. The built-in providers are described in :mod:`reconciler.providers.registry`; a plugin
package describes its own and registers it under the ``reconciler.providers`` entry point
group (docs/how-to/writing-a-provider.md)::

    [project.entry-points."reconciler.providers"]
    kvstore = "kvstore_provider.descriptor:DESCRIPTOR"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ENTRY_POINT_GROUP = "reconciler.providers"
# The project file (``--config``, else ``RECONCILER_CONFIG``): providers whose endpoints need
# names declare them there, with the *names* of the variables holding their secrets.
DEFAULT_PROJECT_FILE = "reconciler.yaml"
# A provider's name is a state section, a plan key and an address owner: one plain word.
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
# "package.module:ATTRIBUTE": where the provider (or its connector) object lives.
_OBJECT_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class ProviderDescriptor:
    """One provider, as the registry lists it before loading it.

    ``provider`` and ``connector`` are ``"module:ATTRIBUTE"`` references, imported on first
    use: ``provider`` names the object implementing
    :class:`reconciler.engine.provider.Provider` (its module should import its manifest
    checkers, not its HTTP client), ``connector`` the
    :class:`reconciler.engine.session.Connector` that the engine's service opens (None: the
    provider is not run through the service). ``manifest_kinds`` and ``root_kind`` must be the
    ones the provider object declares (checked when it is loaded).
    """

    name: str
    root_kind: str
    manifest_kinds: tuple[tuple[str, str], ...]
    provider: str
    connector: str | None = None
    package: str = "miniapp-reconciler"  # the distribution it comes from, named in errors
    # Its records live at the state's root, not in a section of its own (the Mini App Center,
    # whose state predates providers), and the state file is bound to its endpoint: see
    # engine.session.BindsStateFile.
    state_root: bool = False
    # What `--help` lists: its title, and the environment variables a user sets for it, as
    # (name, what it is) rows; secrets are said to be secrets (never printed).
    title: str | None = None
    variables: tuple[tuple[str, str], ...] = ()
    # One of its resources, as the commands count them ("mini app"); None: the provider's own
    # ``noun``, else "<name> resource".
    noun: str | None = None
    # The environment variables holding its credentials, by fixed name: ``validate`` refuses a
    # manifest holding one's value without importing the provider.
    credentials: tuple[str, ...] = ()
    # "module:function" ``(env, project_file) -> names`` for credentials whose variable names
    # the project file declares; imported only when a project file is in use.
    project_credentials: str | None = None
    # `reconciler sandbox serve --api NAME` serves its sandbox (None: it has none), and what
    # that command's help says of it: what it serves, its file, its credentials, one line.
    sandbox_api: str | None = None
    sandbox_help: str | None = None

    def problems(self) -> list[str]:
        """What is malformed in this descriptor (empty when it is usable)."""
        out: list[str] = []
        if not NAME_RE.fullmatch(self.name):
            out.append(f"name {self.name[:60]!r} is not a lowercase word (a-z, 0-9, _)")
        if not NAME_RE.fullmatch(self.root_kind):
            out.append(f"root kind {self.root_kind[:60]!r} is not a lowercase word")
        if not self.manifest_kinds:
            out.append("it declares no manifest kind")
        for pair in self.manifest_kinds:
            if not (
                isinstance(pair, tuple)
                and len(pair) == 2
                and all(isinstance(part, str) and part for part in pair)
            ):
                out.append(f"manifest kind {str(pair)[:80]} is not an (apiVersion, kind) pair")
        for what, ref in (
            ("provider", self.provider),
            ("connector", self.connector),
            ("project_credentials", self.project_credentials),
        ):
            if ref is not None and not _OBJECT_RE.fullmatch(str(ref)):
                out.append(f"{what} {str(ref)[:80]!r} is not a 'module:ATTRIBUTE' reference")
        return out
