"""Every error the sandbox can answer, in one table, and the exception that carries them.

The Mini App Center answers ``{"errors": [{"code": int, "message": str}]}``. Its real codes are
not published, so the sandbox uses its own stable table: each distinct failure has its own
integer code so that tests (and clients) can tell them apart without parsing messages.
"""

from __future__ import annotations

from enum import IntEnum, unique
from typing import Any


@unique  # one code per failure: a duplicated value is an import-time error
class ErrorCode(IntEnum):
    # 1xxx: authentication and routing
    AUTH_MISSING = 1001
    AUTH_INVALID = 1002
    # 1003, 1004: retired (paths and methods that are not the API's get a plain-text 404/405)
    BODY_TOO_LARGE = 1005
    # 2xxx: malformed input
    BODY_NOT_JSON = 2001
    BODY_NOT_OBJECT = 2002
    FIELD_REQUIRED = 2003
    FIELD_TYPE = 2004
    FIELD_EMPTY = 2005
    INVALID_APP_ID = 2006
    INVALID_APP_TYPE = 2007
    INVALID_MAIN_TYPE = 2008
    INVALID_GEO_POINT = 2009
    GEO_POINT_OUT_OF_RANGE = 2010
    INVALID_OBJECT_ID = 2011
    INVALID_SUPERAPP_VERSION = 2012
    INVALID_ORGANIZATION_ID = 2013
    FIELD_TOO_LONG = 2014
    FIELD_UNKNOWN = 2015
    BODY_WRONG_CONTENT_TYPE = 2016
    BODY_NOT_EXPECTED = 2017
    # 3xxx: conflicts with stored data
    DUPLICATE_APP_ID = 3001
    DUPLICATE_VERSION_CODE = 3002
    INVALID_STATUS_STEP = 3003
    # 4xxx: unknown resources
    APP_NOT_FOUND = 4001
    LOCATION_NOT_FOUND = 4002
    VERSION_NOT_FOUND = 4003
    ATTRIBUTE_NOT_FOUND = 4004
    OBJECT_NOT_FOUND = 4005
    # 5xxx: uploads and bundles
    UPLOAD_FILENAME_MISSING = 5001
    UPLOAD_BAD_EXTENSION = 5002
    UPLOAD_EMPTY = 5003
    BUNDLE_NOT_ZIP = 5004
    BUNDLE_MANIFEST_MISSING = 5005
    BUNDLE_MANIFEST_INVALID = 5006
    BUNDLE_FILE_MISSING = 5007
    BUNDLE_TOO_LARGE = 5008
    BUNDLE_INVALID_STATUS = 5009
    # 9xxx: injected faults and server errors
    FAULT_UNAVAILABLE = 9001
    FAULT_AMBIGUOUS = 9002
    RATE_LIMITED = 9003
    INTERNAL = 9999


Problem = tuple[ErrorCode, str]


class ApiError(Exception):
    """An error answer: HTTP status plus one or more (code, message) problems."""

    def __init__(self, status: int, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("an ApiError needs at least one problem")
        super().__init__("; ".join(message for _, message in problems))
        self.status = status
        self.problems = problems

    @classmethod
    def one(cls, status: int, code: ErrorCode, message: str) -> ApiError:
        return cls(status, [(code, message)])

    def body(self) -> dict[str, Any]:
        return error_body(self.problems)


def error_body(problems: list[Problem]) -> dict[str, Any]:
    return {"errors": [{"code": int(code), "message": message} for code, message in problems]}


def bad_request(code: ErrorCode, message: str) -> ApiError:
    return ApiError.one(400, code, message)


def not_found(code: ErrorCode, message: str) -> ApiError:
    return ApiError.one(404, code, message)
