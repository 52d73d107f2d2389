"""Run layer slices through the accelerator (decoder + PE array) in RTL: the engine of ``poscodec accel``.

:func:`run_accel` builds the Verilog of ``hw.accelerator.Accelerator`` for :class:`AccelParams`,
writes a job (per run: each lane's byte stream from ``sw_codec.lanes``, the activations, the
layer configuration, ``y = W x`` from numpy, the memory model) and runs ``sim/tb_accel.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hw.params import DecoderParams
from sw_codec.codec import encode_integers
from sw_codec.format import Mode, Slots
from sw_codec.lanes import lane_streams

from ..runner import BUILD_ROOT, generate_verilog, run_cocotb, write_job

__all__ = ["AccelParams", "AccelRun", "build_accel", "run_accel"]

#: The sources whose change may change the accelerator's netlist (its Verilog is cached by them).
_SOURCES = (sorted((Path(__file__).parents[2] / "hw").glob("*.py"))
            + [Path(__file__).parents[2] / "sw_codec" / "format.py", Path(__file__).parent / "memory.py"])


@dataclass(frozen=True)
class AccelParams(DecoderParams):
    """The accelerator of ``make accel``: a decoder (its :class:`~hw.params.DecoderParams`, one
    MAC per lane) and the PE array's and memory model's sizes."""

    lanes: int = 4
    block_bits: int = 8
    scan_bits: int = 16
    act_bits: int = 8
    acc_bits: int = 32
    max_k: int = 1024
    max_rows: int = 256
    max_words: int = 1 << 13     # per lane, in the harness's memory model
    max_blocks: int = 64         # per lane
    repeat_aware: bool = False   # PEArray's repeat-aware compute (decoder sends its write stream)
    row_lookahead: int = 16


@dataclass
class AccelRun:
    """One layer slice ``W`` (rows x k ints) times ``x``, coded in ``mode``/``slots``."""

    name: str
    W: np.ndarray
    x: np.ndarray
    mode: str
    slots: str = "all"
    bandwidth: float = 32.0     # bits per cycle from main memory, all lanes together
    latency: int = 20           # cycles from request to data


def build_accel(hw: AccelParams):
    """Verilog of :class:`sim.accel.memory.AccelHarness` (the accelerator plus the memory model)."""
    from .memory import AccelHarness

    # The hash covers the HDL sources too, so a change to hw/, the format or the harness rebuilds.
    key = json.dumps(asdict(hw), sort_keys=True).encode() + b"".join(f.read_bytes() for f in _SOURCES)
    top = "poscodec_accel_" + hashlib.sha1(key).hexdigest()[:10]
    path = BUILD_ROOT / top / f"{top}.v"
    if not path.exists():       # conversion takes seconds per lane: reuse a previous one
        dut = AccelHarness(lanes=hw.lanes, max_words=hw.max_words, max_blocks=hw.max_blocks, act_bits=hw.act_bits,
                           acc_bits=hw.acc_bits, max_k=hw.max_k, max_rows=hw.max_rows,
                           repeat_aware=hw.repeat_aware, row_lookahead=hw.row_lookahead, **hw.kwargs())
        path = generate_verilog(dut, top)
    return top, path


def run_job(runs: list[AccelRun], hw: AccelParams, sim: str = "verilator", optimize: bool = False) -> list[dict]:
    """Simulate ``runs`` in one simulator invocation; returns per run the testbench's record plus
    ``weights`` and ``payload_bits`` (the coded layer's size). Raises AssertionError on a mismatch."""
    from hw.pe_array import layer_config

    top, verilog = build_accel(hw)
    body_runs, extra = [], []
    for r in runs:
        rows, k = r.W.shape
        if k > hw.max_k or rows > hw.max_rows:
            raise ValueError(f"{r.name}: {rows} x {k} exceeds the array's {hw.max_rows} x {hw.max_k}")
        q = r.W.ravel().astype(np.int64)
        enc = encode_integers(q, hw.weight_bits, r.mode, r.slots if r.mode != "raw" else "all", hw.block_bits)
        streams = lane_streams(enc.payload, q.size, hw.weight_bits, r.mode, hw.block_bits, hw.lanes)
        for s in streams:
            if len(s.data) * 8 > hw.max_words * hw.word_bits or len(s.block_sizes) > hw.max_blocks:
                raise ValueError(f"{r.name}: a lane's stream exceeds the harness memory "
                                 f"({hw.max_words} words, {hw.max_blocks} blocks)")
        lanes = [{"data": s.data.hex(), "block_sizes": s.block_sizes} for s in streams]
        # Prefetch depth: enough words in flight to cover the latency at this bandwidth, per lane.
        fifo = 4 + math.ceil(r.latency * r.bandwidth / (hw.lanes * hw.word_bits))
        expected = (r.W.astype(np.int64) @ r.x.astype(np.int64)).tolist()
        body_runs.append({"name": r.name, "mode": Mode.of(r.mode), "slots": Slots.of(r.slots),
                          "layer_block_bits": hw.block_bits, "config": layer_config(rows, k, hw.block_bits, hw.lanes),
                          "acts": [int(a) for a in r.x], "expected": expected,
                          "lanes": lanes, "data_key": hashlib.sha1(json.dumps(lanes).encode()).hexdigest(),
                          "bandwidth": r.bandwidth, "latency": r.latency, "fifo_words": fifo})
        extra.append({"weights": int(q.size), "rows": rows, "k": k, "payload_bits": 8 * len(enc.payload),
                      "stream_bits": 8 * sum(len(s.data) for s in streams), "mode": r.mode, "slots": r.slots,
                      "bandwidth": r.bandwidth, "latency": r.latency})
    body = {"lanes": hw.lanes, "word_bits": hw.word_bits, "act_bits": hw.act_bits, "acc_bits": hw.acc_bits,
            "row_bits": max(1, (hw.max_rows - 1).bit_length()), "runs": body_runs}
    job_path, result_path = write_job(top, sim, body)
    run_cocotb(sim=sim, top_name=top, verilog=verilog, test_module="sim.tb_accel", params={"job": str(job_path)},
               optimize=optimize)
    raw = json.loads(result_path.read_text())
    return [dict(r, **e) for r, e in zip(raw, extra)]


run_accel = run_job
