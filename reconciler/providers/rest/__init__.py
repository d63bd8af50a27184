"""A REST-object provider for JSON collection APIs (Django REST framework style) with JWT
access/refresh tokens and a tenant ``Api-Key``: project-file endpoints (:mod:`.config`),
the token flow (:mod:`.auth`), the collection client (:mod:`.client`) and a local sandbox
(:mod:`.sandbox`)."""
