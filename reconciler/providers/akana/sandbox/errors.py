"""The sandbox's error answers.

The platform's error body is not documented (only the statuses are); the sandbox answers
``{"code": <status>, "message": "..."}`` as JSON. Clients must not depend on that shape: the
Akana client shows a bounded excerpt of whatever body comes back.
"""

from __future__ import annotations

from typing import Any


class AkanaError(Exception):
    """An error answer: an HTTP status and one message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": self.status, "message": self.message}


def bad_request(message: str) -> AkanaError:
    return AkanaError(400, message)


def unauthorized(message: str) -> AkanaError:
    return AkanaError(401, message)


def not_found(message: str) -> AkanaError:
    return AkanaError(404, message)
