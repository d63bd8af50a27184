"""The GeneXus Mini App Center provider: everything that knows its API, model and manifests."""
