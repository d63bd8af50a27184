"""One HTTP session for every provider: retries, pacing, lanes, bounded bodies, TLS,
redaction, and the auth classes. Only this package and providers' clients touch httpx."""
