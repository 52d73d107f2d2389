"""Weights through the codec: a setting (``int8ch``, ``int6ch``, ``int4``) to a ``.pcz`` file and back.

A setting quantizes every tensor of two or more dimensions to ``bits``-bit integers (one scale per
tensor, or per output channel with ``ch``) and stores them losslessly in layers of that width
(the format has every width of ``sw_codec.format.WEIGHT_BITS``). 1-D tensors stay float32, as
``poscodec compress`` keeps them.

Decoding is the reference decoder's (``sw_codec``), layer by layer in worker processes. Decoded
layers are kept in a cache folder under the SHA-256 of the file and of the codec's source, so
the same file is decoded once.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sw_codec.codec import DEFAULT_BLOCK_BITS, compress_integers, decode_record, inspect
from sw_codec.format import MAX_WEIGHT_BITS, MIN_WEIGHT_BITS
from sw_codec.quantization import dequantize, quantize

__all__ = ["Setting", "parse_setting", "encode", "decode", "cache_path", "size_of", "MIN_BITS", "MAX_BITS"]

MIN_BITS, MAX_BITS = MIN_WEIGHT_BITS, MAX_WEIGHT_BITS
_SETTING = re.compile(r"int(\d+)(ch)?")


@dataclass(frozen=True)
class Setting:
    """A codec setting: integer width, scale granularity, block size and payload mode."""

    bits: int
    granularity: str = "channel"
    block_bits: int = DEFAULT_BLOCK_BITS
    mode: str = "auto"

    def __post_init__(self):
        if not MIN_BITS <= self.bits <= MAX_BITS:
            raise ValueError(f"bits must be in {MIN_BITS}..{MAX_BITS}, not {self.bits}")

    @property
    def label(self) -> str:
        return f"int{self.bits}{'ch' if self.granularity == 'channel' else ''}"


def parse_setting(text: str, block_bits: int = DEFAULT_BLOCK_BITS, mode: str = "auto") -> Setting:
    """``intB`` (one scale per tensor) or ``intBch`` (per output channel), B in 2..16."""
    m = _SETTING.fullmatch(text.strip().lower())
    if not m:
        raise ValueError(f"codec setting {text!r}: write intB or intBch, B the integer width (e.g. int8ch, int4)")
    return Setting(int(m.group(1)), "channel" if m.group(2) else "tensor", block_bits, mode)


def encode(tensors: dict, setting: Setting, progress: bool = False) -> bytes:
    """The ``.pcz`` file of ``tensors`` at ``setting``."""
    layers = {}
    for name, x in tensors.items():
        x = np.asarray(x, np.float32)
        if x.ndim >= 2:
            q, scales = quantize(x, setting.bits, setting.granularity)
            layers[name] = (q, scales, setting.granularity)
        else:
            layers[name] = x
    return compress_integers(layers, bits=setting.bits, mode=setting.mode, block_bits=setting.block_bits,
                             progress=progress)


def size_of(data: bytes) -> dict:
    """Bits per weight over the quantized tensors (as ``make bench`` counts), the weights and bytes."""
    records = inspect(data)
    quantized = [r for r in records if r.mode != "float32"]
    count = sum(r.count for r in quantized)
    return {"bits_per_weight": 8 * sum(r.length for r in quantized) / max(count, 1),
            "quantized_weights": count, "float_weights": sum(r.count for r in records) - count,
            "file_bytes": len(data)}


_WORKER = {}          # a decoding worker's file and layer table


def _start_worker(data: bytes) -> None:
    _WORKER.update(data=data, records=inspect(data))


def _decode_one(index: int) -> np.ndarray:
    return decode_record(_WORKER["data"], _WORKER["records"][index])


def _fingerprint() -> str:
    """SHA-256 of the codec's source: a changed decoder does not reuse old cached layers."""
    h = hashlib.sha256()
    root = Path(decode_record.__code__.co_filename).parent
    for path in sorted(root.glob("*.py")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def cache_path(data: bytes, cache_dir: str | Path) -> Path:
    """Where :func:`decode` keeps the decoded layers of ``data``."""
    return Path(cache_dir) / f"{hashlib.sha256(data + _fingerprint().encode()).hexdigest()[:32]}.npz"


def decode(data: bytes, *, jobs: int | None = None, cache_dir: str | Path | None = None,
           progress: bool = False) -> dict[str, np.ndarray]:
    """Every layer of a ``.pcz`` file as float32, as :func:`sw_codec.codec.decompress` gives them.

    ``jobs`` worker processes decode the layers (default: one per core, at most 2); with
    ``cache_dir``, the stored integers are read from (and written to) ``cache_dir/<hash>.npz``.
    """
    records = inspect(data)
    cached = None if cache_dir is None else cache_path(data, cache_dir)
    if cached is not None and cached.exists():
        with np.load(cached, allow_pickle=False) as z:
            stored = [z[f"l{i}"] for i in range(len(records))]
        return _as_float(records, stored)
    jobs = jobs or min(2, os.cpu_count() or 1)
    order = sorted(range(len(records)), key=lambda i: -records[i].count)
    stored = [None] * len(records)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(r.count for r in records), desc="decode", unit="w", unit_scale=True, leave=False)
    if jobs > 1 and len(records) > 1:
        ctx = multiprocessing.get_context("spawn")
        with futures.ProcessPoolExecutor(jobs, ctx, initializer=_start_worker, initargs=(data,)) as pool:
            running = {pool.submit(_decode_one, i): i for i in order}
            for done in futures.as_completed(running):
                i = running[done]
                stored[i] = done.result()
                if bar is not None:
                    bar.update(records[i].count)
    else:
        for i in order:
            stored[i] = decode_record(data, records[i])
            if bar is not None:
                bar.update(records[i].count)
    if bar is not None:
        bar.close()
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp.npz")
        np.savez(tmp, **{f"l{i}": a for i, a in enumerate(stored)})
        tmp.replace(cached)
    return _as_float(records, stored)


def _as_float(records, stored) -> dict[str, np.ndarray]:
    return {r.name: (a if r.mode == "float32" else dequantize(a, r.scales)) for r, a in zip(records, stored)}
