"""Test hooks, off unless the fixture turns them on (environment):

* ``REALSHOP_WRITE_DELAY`` seconds: each write (POST, PATCH, PUT, DELETE under /api/, not the
  token endpoints) answers that much later, so that a short access token expires between two
  writes of one apply, every time;
* ``REALSHOP_BLACKLIST_AFTER_WRITE=1``: after each such write every outstanding refresh token
  is blacklisted (as an operator revoking sessions would), so the next refresh is refused and
  only a fresh login works.
"""

import os
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


class TestHooks:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.delay = float(os.environ.get("REALSHOP_WRITE_DELAY", "0"))
        self.blacklist = os.environ.get("REALSHOP_BLACKLIST_AFTER_WRITE") == "1"

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.method in _WRITES and not request.path.startswith("/api/token/"):
            if self.blacklist:
                from rest_framework_simplejwt.token_blacklist.models import (
                    BlacklistedToken,
                    OutstandingToken,
                )

                for token in OutstandingToken.objects.filter(blacklistedtoken__isnull=True):
                    BlacklistedToken.objects.get_or_create(token=token)
            if self.delay:
                time.sleep(self.delay)
        return response
