"""miniapp-reconciler: keep GeneXus Mini App Center mini apps equal to YAML manifests in git."""

__version__ = "0.1.0"
