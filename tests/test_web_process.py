"""The web process (the Reflex app and its API) never imports torch or transformers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_web_process_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys, gptstudio.gptstudio as web; "
        "assert web.app is not None; "
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'sentence_transformers') "
        "if m in sys.modules); print(heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "GPTSTUDIO_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
