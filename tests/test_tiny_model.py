"""``python -m gptstudio.tiny_model``: the tiny base model where the settings look for it, unless
another base model is configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from gptstudio.settings import get_settings
from gptstudio.tiny_model import main
from trainer.tiny import is_built


def test_command_skips_when_another_base_model_is_configured(
    settings_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_env.setenv("GPTSTUDIO_BASE_MODEL", "some/hub-model")
    main(["--if-unconfigured"])
    assert "base model configured: some/hub-model" in capsys.readouterr().out
    assert not get_settings().tiny_model_dir.exists()


def test_command_builds_into_the_settings_folder_once(
    settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--if-unconfigured"])
    folder = get_settings().tiny_model_dir
    assert is_built(folder)
    assert f"tiny model written to {folder}" in capsys.readouterr().out
    main([])
    assert f"tiny model already at {folder}" in capsys.readouterr().out
