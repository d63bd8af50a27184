"""Providers: one package per API the reconciler manages."""
