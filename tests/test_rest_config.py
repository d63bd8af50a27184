"""The project file: endpoints by name, strict, every problem with file:line, no secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ConfigError
from reconciler.providers.rest.config import (
    ProjectConfigError,
    load_project_config,
    resolve_credentials,
)

GOOD = """\
endpoints:
  shop:
    base_url: ${TENANT_BASE_URL}
    auth:
      type: jwt
      token_path: /api/token/
      refresh_path: /api/token/refresh/
      username_env: TENANT_USERNAME
      password_env: TENANT_PASSWORD
    api_key:
      header: Api-Key
      env: TENANT_API_KEY
  public:
    base_url: https://tenant.example.com/
    auth: {type: jwt, token_path: /api/token/, refresh_path: /api/token/refresh/,
           username_env: U, password_env: P}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reconciler.yaml"
    path.write_text(text)
    return path


def test_a_valid_file_names_endpoints_and_the_variables_holding_secrets(tmp_path: Path) -> None:
    config = load_project_config(
        _write(tmp_path, GOOD), {"TENANT_BASE_URL": "http://127.0.0.1:8090"}
    )
    shop = config.endpoint("shop")
    assert shop.base_url == "http://127.0.0.1:8090"
    assert shop.auth.token_path == "/api/token/"
    assert shop.auth.username_env == "TENANT_USERNAME"
    assert shop.api_key is not None and shop.api_key.header == "Api-Key"
    assert (shop.file, shop.line) == (str(tmp_path / "reconciler.yaml"), 3)
    assert config.endpoint("public").base_url == "https://tenant.example.com"
    assert config.endpoint("public").api_key is None
    with pytest.raises(ConfigError, match=r"not declared.*public, shop"):
        config.endpoint("nope")


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    text = """\
endpoints:
  shop:
    base_url: http://tenant.example.com
    password: hunter2-in-the-file
    auth:
      type: oauth
      token_path: api/token
      refresh_path: /api/../token/
      username_env: alice
      password_env: 12
    api_key:
      header: Authorization
      env: TENANT API KEY
"""
    with pytest.raises(ProjectConfigError) as caught:
        load_project_config(_write(tmp_path, text), {})
    found = {(issue.line, issue.path) for issue in caught.value.issues}
    assert (3, "endpoints.shop.base_url") in found  # plain http to a non-loopback host
    assert (4, "endpoints.shop") in found  # unknown key: secrets have no place here
    assert (6, "endpoints.shop.auth.type") in found
    assert (12, "endpoints.shop.api_key.header") in found
    assert (13, "endpoints.shop.api_key.env") in found
    text_of = str(caught.value)
    assert "hunter2" not in text_of
    assert "reconciler.yaml:4:" in text_of


def test_bad_paths_and_env_names(tmp_path: Path) -> None:
    text = GOOD.replace("token_path: /api/token/\n", "token_path: /api/token/?x=1\n", 1)
    text = text.replace("username_env: TENANT_USERNAME", "username_env: 'alice pw'")
    with pytest.raises(ProjectConfigError) as caught:
        load_project_config(_write(tmp_path, text), {"TENANT_BASE_URL": "http://127.0.0.1:1"})
    paths = {issue.path for issue in caught.value.issues}
    assert paths == {"endpoints.shop.auth.token_path", "endpoints.shop.auth.username_env"}


def test_unset_base_url_variable_and_yaml_errors_are_placed(tmp_path: Path) -> None:
    with pytest.raises(ProjectConfigError, match=r"reconciler.yaml:3:.*TENANT_BASE_URL"):
        load_project_config(_write(tmp_path, GOOD), {})
    with pytest.raises(ProjectConfigError, match=r"reconciler.yaml:3:.*YAML syntax error"):
        load_project_config(_write(tmp_path, "endpoints:\n  - [\n"), {})
    with pytest.raises(ProjectConfigError, match="empty"):
        load_project_config(_write(tmp_path, "# nothing\n"), {})
    with pytest.raises(ProjectConfigError, match="No such file"):
        load_project_config(tmp_path / "missing.yaml", {})


def test_credentials_come_from_the_named_variables(tmp_path: Path) -> None:
    env = {"TENANT_BASE_URL": "http://127.0.0.1:8090", "TENANT_USERNAME": "alice"}
    shop = load_project_config(_write(tmp_path, GOOD), env).endpoint("shop")
    with pytest.raises(ConfigError, match=r"\$TENANT_PASSWORD, which is not set") as caught:
        resolve_credentials(shop, env)
    assert "reconciler.yaml:3" in str(caught.value)
    env |= {"TENANT_PASSWORD": "s3cret-password", "TENANT_API_KEY": "key-123456789"}
    creds = resolve_credentials(shop, env)
    assert creds.password.reveal() == "s3cret-password"
    assert "s3cret" not in repr(creds)


def test_the_docs_example_is_a_valid_project_file(tmp_path: Path) -> None:
    page = Path(__file__).parent.parent / "docs" / "getting-started" / "rest.md"
    section = page.read_text(encoding="utf-8").split("## Tenant API sandbox", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    env = {"TENANT_BASE_URL": "http://127.0.0.1:8090"}
    shop = load_project_config(_write(tmp_path, example), env).endpoint("shop")
    assert shop.auth.password_env == "TENANT_PASSWORD"
    assert shop.api_key is not None and shop.api_key.env == "TENANT_API_KEY"


def test_a_page_size_parameter_is_named_per_endpoint_and_none_by_default(tmp_path: Path) -> None:
    key = "      env: TENANT_API_KEY\n"
    text = GOOD.replace(key, key + "    page_size_param: limit\n")
    config = load_project_config(_write(tmp_path, text), {"TENANT_BASE_URL": "https://a.example"})
    assert config.endpoint("shop").page_size_param == "limit"
    assert config.endpoint("public").page_size_param is None
    bad = GOOD.replace(key, key + "    page_size_param: a b\n")
    with pytest.raises(ProjectConfigError) as caught:
        load_project_config(_write(tmp_path, bad), {"TENANT_BASE_URL": "https://a.example"})
    [issue] = caught.value.issues
    assert issue.line == 13 and "query parameter name" in issue.message
