"""Re-encrypt every stored original under the current encryption key.

    python -m gptstudio.rotate_keys            # re-encrypt what is under an older key, or plain
    python -m gptstudio.rotate_keys --new-key  # print a fresh key entry (id:base64) and stop

To rotate: put a new key first in GPTSTUDIO_ENCRYPTION_KEYS (keep the old ones after it),
restart, run this command, then remove the old keys. Files stored before encryption existed are
encrypted by the same run. Exits 1 when a file could not be re-encrypted (the reasons printed).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from gptstudio.services import document, file_crypto


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-key", action="store_true", help="print a new key entry and stop")
    args = parser.parse_args(argv)
    if args.new_key:
        print(file_crypto.new_key_line(f"k{datetime.now(UTC):%Y%m%d%H%M}"))
        return 0
    result = document.reencrypt_originals()
    print(
        f"current key {result.key_id}: {result.reencrypted} re-encrypted, "
        f"{result.already_current} already current, {result.parsed_dropped} parsed copies "
        f"dropped, {len(result.missing)} missing on disk, {len(result.failed)} failed"
    )
    for line in result.missing:
        print(f"missing: {line}")
    for line in result.failed:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
