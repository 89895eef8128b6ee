"""Build the tiny local base model where GPT Studio looks for it (``settings.tiny_model_dir``).

    python -m gptstudio.tiny_model                     # build it unless it is there (--force)
    python -m gptstudio.tiny_model --if-unconfigured   # what `make run` calls: nothing to do
                                                       # when GPTSTUDIO_BASE_MODEL names another

The model itself is :mod:`trainer.tiny`; this module only decides where, and whether, to build it.
"""

from __future__ import annotations

import argparse

from gptstudio.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if it exists")
    parser.add_argument(
        "--if-unconfigured",
        action="store_true",
        help="do nothing when GPTSTUDIO_BASE_MODEL names another base model",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.if_unconfigured and settings.base_model:
        print(f"base model configured: {settings.base_model}")
        return
    from trainer import tiny

    tiny.main([str(settings.tiny_model_dir), *(["--force"] if args.force else [])])


if __name__ == "__main__":
    main()
