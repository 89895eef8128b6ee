"""Measure what encryption at rest and the streamed data export cost, as ratios in one run.

Run from the repository root: ``.venv/bin/python bench/data_rights.py``

Prints:

* encryption at rest: writing a 64 MB upload in 1 MB pieces through
  ``file_crypto.EncryptingWriter`` against writing the same pieces to a plain file (the
  baseline: what uploads did before), and reading it back through ``file_crypto.iter_plain``
  against a plain chunked read; the ratio is time(encrypted) / time(plain);
* size overhead of the format (header and a 16-byte tag per 64 KiB segment);
* the data export: Python's peak allocations while streaming an archive that holds a 64 MB
  upload, against building the same zip in memory with ``zipfile`` into ``BytesIO`` (the
  baseline a naive export would use); the ratio is peak(streamed) / peak(in memory).

The machine is shared: each timing is the best of 3.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

SIZE = 64 * 1024 * 1024
PIECE = 1024 * 1024


def best(function, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        os.environ["GPTSTUDIO_DATA_DIR"] = folder
        from gptstudio.services import file_crypto

        data = os.urandom(SIZE)
        plain, sealed = Path(folder) / "plain", Path(folder) / "sealed"

        def write_plain() -> None:
            with plain.open("wb") as sink:
                for at in range(0, SIZE, PIECE):
                    sink.write(data[at : at + PIECE])

        def write_sealed() -> None:
            with sealed.open("wb") as sink:
                writer = file_crypto.EncryptingWriter(sink)
                for at in range(0, SIZE, PIECE):
                    writer.write(data[at : at + PIECE])
                writer.close()

        def read_plain() -> None:
            with plain.open("rb") as source:
                while source.read(file_crypto.SEGMENT):
                    pass

        def read_sealed() -> None:
            for _ in file_crypto.iter_plain(sealed):
                pass

        w_plain, w_sealed = best(write_plain), best(write_sealed)
        r_plain, r_sealed = best(read_plain), best(read_sealed)
        print(f"write 64 MB: plain {SIZE / w_plain / 1e6:.0f} MB/s, encrypted "
              f"{SIZE / w_sealed / 1e6:.0f} MB/s, ratio {w_sealed / w_plain:.2f}x")  # fmt: skip
        print(f"read 64 MB:  plain {SIZE / r_plain / 1e6:.0f} MB/s, decrypted "
              f"{SIZE / r_sealed / 1e6:.0f} MB/s, ratio {r_sealed / r_plain:.2f}x")  # fmt: skip
        overhead = sealed.stat().st_size - SIZE
        print(f"size overhead: {overhead} bytes ({overhead / SIZE:.4%})")

        tracemalloc.start()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("documents/big.bin", b"".join(file_crypto.iter_plain(sealed)))
        _, in_memory = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del buffer

        from gptstudio.services import data_export

        def entries(_user_id: int):  # type: ignore[no-untyped-def]
            yield "documents/big.bin", file_crypto.iter_plain(sealed)

        data_export._entries = entries  # the archive writer alone, without a database
        tracemalloc.start()
        sent = sum(len(c) for c in data_export._archive(0))
        _, streamed = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"export of a 64 MB upload ({sent / 1e6:.0f} MB sent): peak Python memory "
              f"streamed {streamed / 1e6:.1f} MB, in memory (zipfile into BytesIO) "
              f"{in_memory / 1e6:.1f} MB, ratio {streamed / in_memory:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
