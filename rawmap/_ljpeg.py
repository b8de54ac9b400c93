"""Lossless JPEG (ITU T.81 process 14, SOF3) encoder for DNG raw data (Compression 7).

What Adobe's DNG converter writes, and what LibRaw's and dcraw's
``lossless_dng_load_raw`` and rawspeed's ``LJpegDecoder`` read: one JPEG per
strip or tile, predictor 1 (the sample to the left), point transform 0, and
for a CFA mosaic of even width *two components*: a row of W photosites is
coded as W/2 interleaved pairs, so each component is one colour of the
Bayer row and is predicted from its same-colour neighbour two photosites to
the left.  The first sample of a row is predicted from the one above it
(``2 ** (P - 1)`` on the first row), as the standard says.  An odd width is
coded as one component.

One optimal Huffman table (JPEG Annex K.2, lengths limited to 16 bits by
K.3) is built from the histogram of difference categories and shared by the
components; decoders that take the table of component *c* from table slot
*c* (dcraw, LibRaw) fall back to slot 0.

Why numba: the entropy coder is a bit-serial loop over every photosite (24
million on a 24 MP frame); as numpy array expressions it needs a
(H, W) int32 difference array, a category array and a bit scatter of ~240
million bits.  Two small kernels (a histogram pass and an encode pass) do it
in one pass each; they are compiled on the first compressed DNG only (this
module is imported lazily by :mod:`rawmap.dng`) and cached like
:mod:`rawmap._kernels`.
"""

from __future__ import annotations

import heapq
import struct

import numpy as np
from numba import njit

__all__ = ["encode_lossless_jpeg"]

# category (bit length) of |difference| for 0..32768
_CATEGORY = np.zeros(32769, dtype=np.uint8)
for _s in range(1, 17):
    _CATEGORY[1 << (_s - 1) : min(1 << _s, 32769)] = _s
del _s


@njit(cache=True, nogil=True, inline="always")
def _difference(img, y, x, ncomp, first):  # pragma: no cover - compiled
    """Predictor 1's difference at (y, x), modulo 2^16: the photosite ``ncomp`` to the left (the same
    component), at a row's start the one above, at the first the mid-value ``first``."""
    if x >= ncomp:
        pred = np.int64(img[y, x - ncomp])
    elif y > 0:
        pred = np.int64(img[y - 1, x])
    else:
        pred = np.int64(first)
    return ((np.int64(img[y, x]) - pred + 32768) & 0xFFFF) - 32768


@njit(cache=True, nogil=True)
def _histogram(img, ncomp, precision, category):  # pragma: no cover - compiled
    h, w = img.shape
    hist = np.zeros(17, np.int64)
    first = 1 << (precision - 1)
    for y in range(h):
        for x in range(w):
            d = _difference(img, y, x, ncomp, first)
            hist[category[abs(d)]] += 1
    return hist


@njit(cache=True, nogil=True)
def _encode(img, ncomp, precision, category, codes, lengths, out):  # pragma: no cover - compiled
    """Entropy-code ``img`` into ``out``; the number of bytes written, or -1 when ``out`` is too small."""
    h, w = img.shape
    first = 1 << (precision - 1)
    acc = np.uint64(0)
    nbits = 0
    pos = 0
    limit = out.shape[0] - 2
    for y in range(h):
        for x in range(w):
            d = _difference(img, y, x, ncomp, first)
            s = np.int64(category[abs(d)])
            extra = s if s < 16 else 0  # category 16 (-32768) has no extra bits
            if d < 0:
                d -= 1
            bits = (np.uint64(codes[s]) << np.uint64(extra)) | (np.uint64(d & ((1 << extra) - 1)))
            n = np.int64(lengths[s]) + extra
            acc = (acc << np.uint64(n)) | bits
            nbits += n
            while nbits >= 8:
                if pos >= limit:
                    return -1
                nbits -= 8
                b = np.uint8((acc >> np.uint64(nbits)) & np.uint64(0xFF))
                out[pos] = b
                pos += 1
                if b == 0xFF:  # byte stuffing
                    out[pos] = 0
                    pos += 1
            acc &= (np.uint64(1) << np.uint64(nbits)) - np.uint64(1)
    if nbits > 0:  # pad the last byte with 1 bits
        if pos >= limit:
            return -1
        pad = 8 - nbits
        b = np.uint8(((acc << np.uint64(pad)) | np.uint64((1 << pad) - 1)) & np.uint64(0xFF))
        out[pos] = b
        pos += 1
        if b == 0xFF:
            out[pos] = 0
            pos += 1
    return pos


def _code_lengths(freq: np.ndarray) -> dict[int, int]:
    """Huffman code length of each used category, at most 16, none all ones (JPEG Annex K.2/K.3)."""
    used = [(int(f), s) for s, f in enumerate(freq) if f > 0]
    reserved = 17  # the one-count symbol that takes the all-ones code (K.2)
    heap: list[tuple[int, int, list[int]]] = [(f, s, [s]) for f, s in used] + [(1, reserved, [reserved])]
    heapq.heapify(heap)
    depth = dict.fromkeys([s for _, s in used] + [reserved], 0)
    tie = 100
    if len(heap) == 1:  # pragma: no cover - the reserved symbol is always there
        return {}
    while len(heap) > 1:
        f1, _, a = heapq.heappop(heap)
        f2, _, b = heapq.heappop(heap)
        for s in a + b:
            depth[s] += 1
        heapq.heappush(heap, (f1 + f2, tie, a + b))
        tie += 1
    # K.3 (Adjust_BITS): number of codes per length, longest first, limited to 16
    bits = [0] * 40
    for d in depth.values():
        bits[d] += 1
    i = len(bits) - 1
    while i > 16:
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
        i -= 1
    # symbols by falling frequency get the shortest lengths; the reserved one is last
    order = sorted((s for _, s in used), key=lambda s: (-int(freq[s]), s)) + [reserved]
    lengths: dict[int, int] = {}
    k = 0
    for length in range(1, 17):
        for _ in range(bits[length]):
            lengths[order[k]] = length
            k += 1
    del lengths[reserved]
    return lengths


def _canonical(lengths: dict[int, int]) -> tuple[np.ndarray, np.ndarray, bytes]:
    """Codes and lengths per category (17 entries) and the DHT segment payload (BITS + HUFFVAL)."""
    symbols = sorted(lengths, key=lambda s: (lengths[s], s))
    codes = np.zeros(17, dtype=np.uint32)
    lens = np.zeros(17, dtype=np.uint8)
    code = 0
    prev = 0
    for s in symbols:
        code <<= lengths[s] - prev
        prev = lengths[s]
        codes[s] = code
        lens[s] = prev
        code += 1
    counts = bytes(sum(1 for s in symbols if lengths[s] == n) for n in range(1, 17))
    return codes, lens, counts + bytes(symbols)


def encode_lossless_jpeg(img: np.ndarray, *, precision: int | None = None) -> bytes:
    """Encode a mosaic as one lossless JPEG (SOF3, predictor 1), as a DNG strip or tile.

    Parameters
    ----------
    img : (H, W) ndarray of uint16
        The strip or tile.  Even W is coded as two interleaved components
        of W/2 samples (the CFA layout DNG readers expect), odd W as one.
        H and W/components at most 65535.
    precision : int, optional
        Sample precision P in bits (2..16); the smallest that holds the
        largest value when omitted.  Every value must be below ``2 ** P``.

    Returns
    -------
    bytes
        The JPEG stream, SOI to EOI.

    Raises
    ------
    ValueError
        A shape a JPEG frame cannot hold, or a value above the precision.
    """
    img = np.ascontiguousarray(img)
    if img.ndim != 2 or img.dtype != np.uint16:
        raise TypeError(f"img must be a (H, W) uint16 array, got shape {img.shape} dtype {img.dtype}")
    h, w = img.shape
    ncomp = 2 if w % 2 == 0 else 1
    if not (0 < h <= 65535 and 0 < w // ncomp <= 65535):
        raise ValueError(f"a {h}x{w} strip does not fit in one lossless JPEG frame (at most 65535 per side)")
    top = int(img.max())
    if precision is None:
        precision = max(2, top.bit_length())
    if not 2 <= precision <= 16 or top >> precision:
        raise ValueError(f"precision must lie in 2..16 and hold the largest value {top}, got {precision}")
    hist = _histogram(img, ncomp, precision, _CATEGORY)
    codes, lens, dht = _canonical(_code_lengths(hist))
    extra = np.minimum(np.arange(17), 15) * (np.arange(17) < 16)
    nbytes = int((hist * (lens.astype(np.int64) + extra)).sum() + 7) // 8
    size = nbytes + nbytes // 16 + 64
    while True:
        out = np.empty(size, dtype=np.uint8)
        n = _encode(img, ncomp, precision, _CATEGORY, codes, lens, out)
        if n >= 0:
            break
        size = 2 * nbytes + 64  # more 0xFF bytes than expected: room for stuffing every byte
    comps = b"".join(bytes((c, 0x11, 0)) for c in range(ncomp))
    sof = struct.pack(">HBHHB", 8 + 3 * ncomp, precision, h, w // ncomp, ncomp) + comps
    sos = bytes((ncomp,)) + b"".join(bytes((c, 0)) for c in range(ncomp)) + bytes((1, 0, 0))
    return b"".join(
        [
            b"\xff\xd8",
            b"\xff\xc3" + sof,
            b"\xff\xc4" + struct.pack(">HB", 2 + 1 + len(dht), 0) + dht,
            b"\xff\xda" + struct.pack(">H", 2 + len(sos)) + sos,
            out[:n].tobytes(),
            b"\xff\xd9",
        ]
    )
