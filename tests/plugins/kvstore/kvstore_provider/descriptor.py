"""What the registry knows before importing this provider (plain data, no heavy import)."""

from reconciler.engine.descriptor import ProviderDescriptor

DESCRIPTOR = ProviderDescriptor(
    name="kvstore",
    root_kind="kv_entry",
    manifest_kinds=(("kvstore/v1", "Entry"),),
    provider="kvstore_provider.provider:KVSTORE",
    connector="kvstore_provider.session:KVSTORE_CONNECTOR",
    credentials=("KVSTORE_API_KEY",),
    title="Key/value store",
    variables=(
        ("KVSTORE_URL", "the store's base URL, e.g. https://kv.example.com"),
        ("KVSTORE_API_KEY", "its API key (never printed)"),
    ),
)
