"""A key/value store as a miniapp-reconciler provider: the example plugin.

Kept empty on purpose: the registry imports ``kvstore_provider.descriptor`` to list the
provider, and only a run that names ``kvstore`` resources imports the rest.
"""
