"""Word shingles and MinHash signatures, vectorised with numpy over a whole corpus.

Words are hashed without a Python loop over them: the texts' words are laid out as one byte
buffer (ASCII texts through a ``bytes.translate`` table equivalent to ``\\w+`` on lowercased
text, other texts through :func:`words`), and each word's hash is a polynomial over its bytes
summed with ``np.add.reduceat``, mixed with its length and a SplitMix64 finaliser. A shingle's
hash combines the hashes of its ``k`` words the same way, for every position of every text in
one pass. Signatures use datasketch's default ``affine32`` scheme with the permutations
of ``MinHash(num_perm, seed)``, so a row equals what
``MinHash(num_perm, seed, hashfunc=int).update_batch(shingle_hashes_32)`` would compute; it is
computed one permutation at a time over the whole corpus, with ``np.minimum.reduceat`` taking
each text's minimum, instead of one text at a time.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from datasketch import MinHash

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]

_WORD = re.compile(r"\w+")
_POLY = np.uint64(0x9E3779B97F4A7C15)
_BYTE_POLY = np.uint64(0x100000001B3)
_LENGTH_MIX = np.uint64(0xD6E8FEB86659FD93)
_SPACE = ord(" ")
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TEXTS_PER_BLOCK = 4096


def _ascii_word_byte(byte: int) -> int:
    character = chr(byte)
    if character.isascii() and (character.isalnum() or character == "_"):
        return ord(character.lower())
    return _SPACE


# Lowercase ASCII letters, keep digits and "_", turn every other byte into a space: for ASCII
# text this splits exactly where ``\w+`` on the lowercased text would.
_ASCII_WORDS = bytes(_ascii_word_byte(byte) for byte in range(256))


def words(*, text: str) -> list[str]:
    """Case-folded, NFKC-normalised word tokens; punctuation and spacing are ignored."""
    if text.isascii():
        return _WORD.findall(text.lower())
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


@dataclass(frozen=True)
class ShingleSets:
    """64-bit shingle hashes of many texts (in text order, repeats kept), back to back.

    The hashes of text ``i`` are ``values[offsets[i]:offsets[i + 1]]``; its shingle *set* is
    ``set(values[...])``. Repeats do not change a MinHash, so they are not removed.
    """

    values: U64
    offsets: I64

    def of(self, index: int) -> U64:
        """The shingle hashes of text ``index``."""
        return self.values[self.offsets[index] : self.offsets[index + 1]]

    def sizes(self) -> I64:
        """How many shingles (counting repeats) each text has."""
        return np.diff(self.offsets)


def _finalise(hashes: U64) -> U64:
    hashes = hashes ^ (hashes >> np.uint64(30))
    hashes = hashes * _MIX1
    hashes = hashes ^ (hashes >> np.uint64(27))
    hashes = hashes * _MIX2
    return hashes ^ (hashes >> np.uint64(31))


def _word_bytes(text: str) -> bytes:
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORDS)
    return " ".join(words(text=text)).encode("utf-8")


def _powers(count: int) -> U64:
    """``_BYTE_POLY ** k`` (mod 2**64) for k in range(count)."""
    powers = np.full(count, _BYTE_POLY, dtype=np.uint64)
    powers[0] = 1
    return np.cumprod(powers, dtype=np.uint64)


def _block_word_hashes(texts: Sequence[str]) -> tuple[U64, I64]:
    """Hashes of the words of ``texts`` in order, and how many words each text has."""
    pieces = [_word_bytes(text) for text in texts]
    buffer = np.frombuffer(b" ".join(pieces), dtype=np.uint8)
    sizes = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    text_starts = np.concatenate(([0], np.cumsum(sizes + 1)[:-1]))
    is_word = buffer != _SPACE
    edges = np.diff(np.concatenate(([0], is_word.view(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if len(starts) == 0:
        return np.empty(0, np.uint64), np.zeros(len(texts), np.int64)
    lengths = ends - starts
    first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    offsets = np.arange(int(lengths.sum())) - np.repeat(first, lengths)
    powers = _powers(int(lengths.max()))[offsets]
    weighted = (buffer[is_word].astype(np.uint64) + np.uint64(1)) * powers
    hashes = np.add.reduceat(weighted, first) ^ (lengths.astype(np.uint64) * _LENGTH_MIX)
    owners = np.searchsorted(text_starts, starts, side="right") - 1
    return _finalise(hashes), np.bincount(owners, minlength=len(texts)).astype(np.int64)


def word_hashes(*, texts: Sequence[str]) -> tuple[U64, I64]:
    """64-bit hashes of every word of ``texts`` (as :func:`words` splits them), back to back,
    and the number of words of each text. Equal words get equal hashes in any process."""
    blocks = [
        _block_word_hashes(texts[start : start + _TEXTS_PER_BLOCK])
        for start in range(0, len(texts), _TEXTS_PER_BLOCK)
    ]
    if not blocks:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    return np.concatenate([h for h, _ in blocks]), np.concatenate([c for _, c in blocks])


def _combine(token_hashes: U64, width: int, count: int) -> U64:
    """Polynomial hash of ``width`` consecutive tokens at each of the first ``count`` positions."""
    combined = token_hashes[:count].copy()
    for offset in range(1, width):
        combined = combined * _POLY + token_hashes[offset : offset + count]
    return _finalise(combined)


def shingle_sets(*, texts: Sequence[str], shingle_size: int) -> ShingleSets:
    """Word ``shingle_size``-gram hashes of each text (a shorter text: one shingle)."""
    token_hashes, lengths = word_hashes(texts=texts)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    owners, hashes = _full_shingles(token_hashes, starts, lengths, shingle_size)
    short_owners, short_hashes = _short_texts(token_hashes, starts, lengths, shingle_size)
    if len(short_owners):
        owners = np.concatenate((owners, short_owners))
        order = np.argsort(owners, kind="stable")
        owners, hashes = owners[order], np.concatenate((hashes, short_hashes))[order]
    counts = np.bincount(owners, minlength=len(texts))
    return ShingleSets(values=hashes, offsets=np.concatenate(([0], np.cumsum(counts))))


def _full_shingles(token_hashes: U64, starts: I64, lengths: I64, width: int) -> tuple[I64, U64]:
    count = len(token_hashes) - width + 1
    if count <= 0:
        return np.empty(0, np.int64), np.empty(0, np.uint64)
    owners = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)[:count]
    local = np.arange(count, dtype=np.int64) - starts[owners]
    inside = local <= lengths[owners] - width
    return owners[inside], _combine(token_hashes, width, count)[inside]


def _short_texts(token_hashes: U64, starts: I64, lengths: I64, width: int) -> tuple[I64, U64]:
    short = np.flatnonzero((lengths > 0) & (lengths < width))
    hashes = [
        _combine(token_hashes[starts[i] : starts[i] + lengths[i]], int(lengths[i]), 1)[0]
        for i in short
    ]
    return short.astype(np.int64), np.array(hashes, dtype=np.uint64)


def _fmix32(values: U32) -> U32:
    """MurmurHash3's 32-bit finaliser, as datasketch applies it before its permutations."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def minhash_inputs(*, shingles: ShingleSets) -> U32:
    """The 32-bit values fed to MinHash: the upper half of each shingle hash."""
    return (shingles.values >> np.uint64(32)).astype(np.uint32)


def minhash_signatures(*, shingles: ShingleSets, num_perm: int, seed: int) -> U32:
    """One datasketch-compatible (affine32) signature row per text.

    A text without words keeps the maximum value everywhere, like an empty datasketch MinHash.
    """
    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    mixed = _fmix32(minhash_inputs(shingles=shingles))
    sizes = shingles.sizes()
    signatures = np.full((num_perm, len(sizes)), np.iinfo(np.uint32).max, dtype=np.uint32)
    filled = np.flatnonzero(sizes > 0)
    if len(filled) == 0:
        return signatures.T.copy()
    starts = shingles.offsets[filled]
    permuted = np.empty_like(mixed)
    for row in range(num_perm):
        # uint32 arithmetic wraps: a * h + b mod 2**32, datasketch's affine32 permutation.
        np.multiply(mixed, a[row], out=permuted)
        permuted += b[row]
        signatures[row, filled] = np.minimum.reduceat(permuted, starts)
    return np.ascontiguousarray(signatures.T)
