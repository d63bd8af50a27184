"""`reconciler sandbox serve`: placeholder, filled in by the sandbox work."""
