"""Settings of the test server: everything from the environment the fixture sets."""

import os
from datetime import timedelta

SECRET_KEY = os.environ.get("REALSHOP_SECRET_KEY", "test-only-not-a-secret-0123456789abcdef")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "realshop.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "rest_framework_api_key",
    "realshop",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware", "realshop.hooks.TestHooks"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("REALSHOP_DB", "realshop.sqlite3"),
        # Several requests at once (an apply runs writes concurrently): wait for the lock.
        "OPTIONS": {"timeout": 30},
    }
}
# The tenant API reads the key from its own header, `Api-Key: <key>`.
API_KEY_CUSTOM_HEADER = "HTTP_API_KEY"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": int(os.environ.get("REALSHOP_PAGE_SIZE", "5")),
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(
        seconds=float(os.environ.get("REALSHOP_ACCESS_SECONDS", "300"))
    ),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        seconds=float(os.environ.get("REALSHOP_REFRESH_SECONDS", "86400"))
    ),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
