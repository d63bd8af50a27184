"""Akana API Platform apps: session auth, wire models, typed client, and a local sandbox.

The sandbox (``reconciler.providers.akana.sandbox``) is imported only by the CLI wiring and
tests, never by the client: the client is tested against an independent implementation.
"""
