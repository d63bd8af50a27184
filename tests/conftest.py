"""Shared pytest configuration. Fixture modules are plugins so that each area owns its own."""

# The example provider plugin (tests/plugins/kvstore) is installed for the whole session,
# before anything imports the registry: it is then a registered provider like the built-in
# ones (the provider contract suite runs over it too), in this process and in every child
# process the tests start (PYTHONPATH).
from tests.plugin_install import install_for_session

install_for_session()

pytest_plugins = [
    "tests.fixtures_sandbox",
    "tests.fixtures_pipeline",
    "tests.fixtures_akana",

    "tests.fixtures_tenant",

    "tests.fixtures_postgres",
    "tests.fixtures_realrest",
]

# respx's default mocker patches httpcore's connection pool; the client's own transport
# (reconciler.transport.h11lane, D100) does not go through httpcore, so respx routes are
# installed one level up instead: on httpx.AsyncClient's transport lookup, which every
# client in this repository goes through. Same routes, same answers, same raised errors.
import respx.mocks  # noqa: E402

respx.mocks.DEFAULT_MOCKER = "httpx"


import pytest  # noqa: E402

from reconciler.secrets import forget_retired  # noqa: E402


@pytest.fixture(autouse=True)
def _forget_retired_secrets() -> object:
    """A secret let go stays masked for the rest of the process (D116); in the test process,
    one test's old token (``xxxxxxxx``) must not mask another test's text."""
    yield
    forget_retired()
