"""Providers: the APIs this tool reconciles objects with, each behind the same seam."""
