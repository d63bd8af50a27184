"""Shared pytest configuration. Fixture modules are plugins so that each area owns its own."""

pytest_plugins = [
    "tests.fixtures_sandbox",
    "tests.fixtures_pipeline",
    "tests.fixtures_akana",

    "tests.fixtures_tenant",

    "tests.fixtures_postgres",
]
