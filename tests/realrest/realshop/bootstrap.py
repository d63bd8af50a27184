"""``python -m realshop.bootstrap``: migrate the SQLite database named by ``REALSHOP_DB``,
make the user, the tenants and their keys, and print them as one JSON line (the test fixture
reads it). Tenants: ``public`` (read-only, with a public key) and ``REALSHOP_TENANTS``
writable ones (``tenant-01``...), so that each test can have a tenant of its own."""

import json
import os
import sys

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "realshop.settings")
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from realshop.models import Category, Tenant, TenantAPIKey

    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    username, password = os.environ["REALSHOP_USERNAME"], os.environ["REALSHOP_PASSWORD"]
    User.objects.create_user(username=username, password=password)
    keys: dict[str, str] = {}
    count = int(os.environ.get("REALSHOP_TENANTS", "2"))
    tenants = [("public", True)] + [(f"tenant-{n:02d}", False) for n in range(1, count + 1)]
    for name, read_only in tenants:
        tenant = Tenant.objects.create(name=name, read_only=read_only)
        # The public data every tenant starts with (as the sandbox seeds it).
        Category.objects.create(tenant=tenant, slug="general", name="General")
        _, keys[name] = TenantAPIKey.objects.create_key(name=name, tenant=tenant)
    json.dump({"api_keys": keys}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
