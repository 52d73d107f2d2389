"""Whole-model compression: quantize, pick a mode per layer, write and read ``.pcz`` files.

Everything the CLI does is one of these functions; the CLI only parses arguments and prints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analysis import analyze
from .container import LayerRecord, payload_of, read_table, write_container
from .decoder import decode_layer
from .encoder import code_length_limit, encode_positions, encode_raw, huffman_2_size_bound, huffman_size_bounds, payload_size
from .errors import FormatError
from .format import MODES, POSITION_MODES, SLOTS, VERSION, block_format_of, check_block_format, check_params
from .quantization import GRANULARITIES, dequantize, quantize
from .search import choose_params

DEFAULT_BLOCK_BITS = 14
MODE_CHOICES = ("auto",) + MODES
SLOTS_CHOICES = ("auto",) + SLOTS


@dataclass
class EncodedLayer:
    mode: str
    slots: str
    payload: bytes
    sizes: dict[str, int]
    #: The block analysis the payload was built from (None for raw-only); lets callers size
    #: further candidates without analysing again.
    groups: object = None
    #: The layout of huffman-mode blocks (1 or 2) the sizes and payload are in.
    block_format: int = 1


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="layer", leave=False)


def check_choices(bits: int, granularity: str, mode: str, slots: str, block_bits: int) -> None:
    """Validate user parameters before any work, with errors that name the parameter."""
    check_params(bits, block_bits)
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, not {granularity!r}")
    if mode not in MODE_CHOICES:
        raise ValueError(f"mode must be one of {MODE_CHOICES}, not {mode!r}")
    if slots not in SLOTS_CHOICES:
        raise ValueError(f"slots must be one of {SLOTS_CHOICES}, not {slots!r}")


def encode_integers(q: np.ndarray, bits: int, mode: str = "auto", slots: str = "auto",
                    block_bits: int = DEFAULT_BLOCK_BITS, block_format: int = 1) -> EncodedLayer:
    """Losslessly encode integers ``q`` (|q| < 2**(bits-1)) in ``mode``, or the smallest with ``auto``.

    ``auto`` picks the smallest candidate (``raw``, then ``MODE/SLOTS`` in the order of
    ``POSITION_MODES`` and ``SLOTS``), the first of equal ones. ``sizes`` gives the payload bytes
    of every candidate that was measured. ``auto`` does not measure candidates that cannot be
    picked: with ``slots="auto"`` the ``repeat/all`` and ``distance/all`` ones, never smaller than
    their ``free`` twins (:func:`dominated_by_free`), and Huffman ones whose lower bound
    (:func:`~sw_codec.encoder.huffman_size_bound`) shows that a measured candidate is picked before
    them. :func:`candidate_sizes` measures every one. ``block_format`` (1 or 2) is the layout of
    huffman-mode blocks (a file's container version fixes it: ``format.block_format_of``).
    """
    check_params(bits, block_bits)
    check_block_format(block_format)
    q = np.asarray(q)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if q.size and (q.min() < lo or q.max() > hi):
        raise ValueError(f"integers outside the {bits}-bit range [{lo}, {hi}]")
    modes = POSITION_MODES if mode == "auto" else ((mode,) if mode != "raw" else ())
    sizes = {"raw": (q.size * bits + 7) // 8}
    best = ("raw", "all", None, sizes["raw"], None)
    groups = None
    if modes and q.size:
        groups = analyze(q, bits, block_bits)
        candidates = [(m, s) for m in modes
                      for s in ((slots,) if slots != "auto" else tuple(s for s in SLOTS if not dominated_by_free(m, s)))]
        if mode == "auto":
            best = _smallest(groups, candidates, sizes, best, block_format)
        else:
            for m, s in candidates:
                params = choose_params(groups, m, s, code_length_limit(m, block_format))
                sizes[f"{m}/{s}"] = size = payload_size(groups, m, s, params, block_format)
                best = (m, s, params, size, None)
        if best[0] != "raw":
            m, s, params, _, payload = best
            payload = payload if payload is not None else encode_positions(groups, m, s, params, block_format)
            return EncodedLayer(m, s, payload, sizes, groups, block_format)
    return EncodedLayer("raw", "all", encode_raw(q, bits), sizes, groups, block_format)


def _smallest(groups, candidates, sizes: dict, raw: tuple, block_format: int = 1) -> tuple:
    """``(mode, slots, params, size, payload)`` of the smallest of ``raw`` and ``candidates``, the
    first of equal ones, recording each measured size in ``sizes``; ``payload`` is the packed
    candidate when measuring it packed it, else None.

    The repeat and distance modes are cheap to size and always measured; a Huffman candidate gets
    a lower bound first (:func:`~sw_codec.encoder.huffman_size_bounds`, all of them in one pass).
    Candidates are taken from the lowest bound (or size) up; one whose bound exceeds the best size
    so far, or equals it and comes after the best in order, is never picked, so is not measured.
    A Huffman candidate that is measured is packed (its size is the payload's length): one is
    picked far more often than not, and its payload is then not built twice. In block format 2
    the Huffman bound is :func:`~sw_codec.encoder.huffman_2_size_bound` (fixed fields only).
    """
    huffman = [s for m, s in candidates if m == "huffman"]
    if block_format == 2:
        huffman_bounds = {s: huffman_2_size_bound(groups) for s in huffman}
    else:
        huffman_bounds = dict(zip(huffman, huffman_size_bounds(groups, huffman))) if huffman else {}
    bounds = []
    for m, s in candidates:
        if m == "huffman":
            bounds.append(huffman_bounds[s])
        else:
            sizes[f"{m}/{s}"] = payload_size(groups, m, s)
            bounds.append(sizes[f"{m}/{s}"])
    best, best_at = raw, -1                       # raw comes first
    for i in sorted(range(len(candidates)), key=lambda i: (bounds[i], i)):
        if bounds[i] > best[3] or (bounds[i] == best[3] and i > best_at):
            continue
        m, s = candidates[i]
        params = choose_params(groups, m, s, code_length_limit(m, block_format))
        payload = None
        if m == "huffman":
            payload = encode_positions(groups, m, s, params, block_format)
            sizes[f"{m}/{s}"] = len(payload)
        size = sizes[f"{m}/{s}"]
        if size < best[3] or (size == best[3] and i < best_at):
            best, best_at = (m, s, params, size, payload), i
    return best


def dominated_by_free(mode: str, slots: str) -> bool:
    """True if ``mode/slots`` is never smaller than ``mode/free`` on any input.

    Counting among free slots only shrinks what a member field holds: a group's domain
    ``D_free <= D_all``, and a member's free index is its position minus the earlier slots that
    smaller values took, a count that never decreases along the block, so every distance
    ``d_free <= d_all`` too. The repeat field (``bitlen(D - 1)`` bits) and the distance width
    (``bitlen`` of the group's largest distance) are monotone in those, and every header field is
    the same. The Huffman mode has no such order (its codes adapt), so both are measured.
    """
    return slots == "all" and mode in ("repeat", "distance")


def candidate_sizes(enc: EncodedLayer, modes=POSITION_MODES) -> dict[str, int]:
    """Payload bytes of every ``MODE/SLOTS`` candidate, measuring those ``enc`` skipped."""
    sizes = dict(enc.sizes)
    if enc.groups is not None:
        for m in modes:
            for s in SLOTS:
                if f"{m}/{s}" not in sizes:
                    params = choose_params(enc.groups, m, s, code_length_limit(m, enc.block_format))
                    sizes[f"{m}/{s}"] = payload_size(enc.groups, m, s, params, enc.block_format)
    return sizes


def compress(tensors: dict[str, np.ndarray], *, bits: int = 8, granularity: str = "tensor", mode: str = "auto",
             slots: str = "auto", block_bits: int = DEFAULT_BLOCK_BITS, quantize_1d: bool = False,
             progress: bool = False, version: int = VERSION) -> bytes:
    """Quantize float tensors and compress them into one ``.pcz`` file (returned as bytes) of
    container ``version`` (1 or 2; huffman payloads in block format 1 or 2).

    Tensors of two or more dimensions are quantized to ``bits``; 1-D and scalar tensors (biases,
    norms) stay float32 and are stored raw unless ``quantize_1d``.
    """
    check_choices(bits, granularity, mode, slots, block_bits)
    layers = {}
    for name, x in tensors.items():
        x = np.asarray(x, dtype=np.float32)
        if x.ndim >= 2 or (quantize_1d and x.ndim == 1):
            q, scales = quantize(x, bits, granularity)
            layers[name] = (q, scales, granularity if x.ndim >= 2 else "tensor")
        else:
            layers[name] = x
    return compress_integers(layers, bits=bits, mode=mode, slots=slots, block_bits=block_bits, progress=progress,
                             version=version)


def compress_integers(layers: dict, *, bits: int = 8, mode: str = "auto", slots: str = "auto",
                      block_bits: int = DEFAULT_BLOCK_BITS, progress: bool = False, version: int = VERSION) -> bytes:
    """Compress already-quantized layers losslessly into a ``.pcz`` file of container ``version``.

    The version fixes the payloads' block format (``format.block_format_of``): huffman payloads
    of version-2 files are in block format 2, those of version-1 files in block format 1.

    ``layers`` maps a name to ``(q, scales, granularity)`` (integers, float32 scales, "tensor" or
    "channel") or ``(q, scales, granularity, layer_bits)`` (a width of its own for that layer,
    in place of ``bits``), or to a float array stored raw as float32.
    """
    check_choices(bits, "tensor", mode, slots, block_bits)
    block_format = block_format_of(version)
    records, payloads = [], []
    for name, layer in _progress(list(layers.items()), progress, "compress"):
        if isinstance(layer, tuple):
            q, scales, granularity, layer_bits = layer if len(layer) == 4 else (*layer, bits)
            check_choices(layer_bits, granularity, mode, slots, block_bits)
            enc = encode_integers(q, layer_bits, mode, slots, block_bits, block_format)
            records.append(LayerRecord(name, tuple(np.shape(q)), enc.mode, layer_bits, granularity, enc.slots,
                                       block_bits if enc.mode != "raw" else 0,
                                       np.asarray(scales, np.float32).ravel()))
            payloads.append(enc.payload)
        else:
            x = np.asarray(layer, dtype=np.float32)
            records.append(LayerRecord(name, tuple(x.shape), "float32", 32))
            payloads.append(x.astype("<f4").tobytes())
    return write_container(records, payloads, version=version)


def inspect(data: bytes) -> list[LayerRecord]:
    """The validated layer table of a ``.pcz`` file."""
    return read_table(data)


def decode_record(data: bytes, record: LayerRecord) -> np.ndarray:
    """The stored array of one layer: integers (int8/int16) or float32, in the layer's shape
    (huffman payloads in the block format of the file's version, ``record.block_format``)."""
    payload = payload_of(data, record)
    try:
        if record.mode == "float32":
            if len(payload) != 4 * record.count:
                raise FormatError(f"float32 payload is {len(payload)} bytes, {4 * record.count} expected", offset=0)
            values = np.frombuffer(payload, "<f4").astype(np.float32)
        else:
            values = decode_layer(payload, record.count, record.bits, record.mode, record.slots, record.block_bits,
                                  record.block_format)
    except FormatError as e:
        raise e.located(layer=record.name, base=record.offset) from None
    return values.reshape(record.shape)


def decompress(data: bytes, *, integers: bool = False, progress: bool = False) -> dict[str, np.ndarray]:
    """All layers of a ``.pcz`` file by name.

    Default: float32 tensors (integers times their scales). With ``integers``: the integer tensors
    under their names and their scales under ``NAME.scale``; float layers as stored.
    """
    out = {}
    for record in _progress(read_table(data), progress, "decompress"):
        values = decode_record(data, record)
        if record.mode == "float32":
            out[record.name] = values
        elif integers:
            out[record.name] = values
            out[f"{record.name}.scale"] = record.scales
        else:
            out[record.name] = dequantize(values, record.scales)
    return out
