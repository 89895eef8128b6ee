"""Settings: embedded defaults, production refuses the default secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gptstudio.settings import DEFAULT_SECRET_KEY, Settings


def test_embedded_defaults_need_no_configuration(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.delenv("GPTSTUDIO_DATA_DIR")
    settings = Settings(_env_file=None)
    assert settings.database_url == "sqlite:///data/gptstudio.db"
    assert settings.artifacts_dir == Path("data/artifacts")
    assert settings.resolved_base_model == str(Path("data/models/tiny-llama"))
    assert not settings.redis_url
    assert not settings.json_logs


def test_production_refuses_the_shipped_secret(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("GPTSTUDIO_ENV", "production")
    settings_env.setenv("GPTSTUDIO_ENCRYPTION_KEYS", "k1:" + "A" * 43 + "=")
    with pytest.raises(ValidationError, match="GPTSTUDIO_SECRET_KEY still has the shipped default"):
        Settings(_env_file=None)
    settings_env.setenv("GPTSTUDIO_SECRET_KEY", "x" * 40)
    settings = Settings(_env_file=None)
    assert settings.json_logs
    assert settings.secret_key.get_secret_value() != DEFAULT_SECRET_KEY


def test_short_secret_is_refused(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("GPTSTUDIO_SECRET_KEY", "short")
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(_env_file=None)


def test_base_model_accepts_hub_ids_and_paths(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("GPTSTUDIO_BASE_MODEL", "Qwen/Qwen2.5-0.5B-Instruct")
    assert Settings(_env_file=None).resolved_base_model == "Qwen/Qwen2.5-0.5B-Instruct"
