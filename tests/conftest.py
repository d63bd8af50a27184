"""Shared pytest configuration. Fixture modules are plugins so that each area owns its own."""

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
