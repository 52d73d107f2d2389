"""Decode layers in RTL simulation and compare with ``sw_codec``: the engine of ``poscodec sim``.

:func:`run_layers` builds the Verilog of ``hw.decoder_top.DecoderTop`` for the hardware
parameters, writes a job (per layer and lane: byte stream, block sizes, the weights ``sw_codec``
decoded) and runs ``sim/tb_decoder.py`` on Verilator or Icarus. It returns per layer: weights
decoded, cycles, weights per cycle per lane, mismatches and the error flag.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from hw.params import DecoderParams
from sw_codec.decoder import decode_layer
from sw_codec.format import Mode, Slots
from sw_codec.lanes import lane_streams

from .runner import generate_verilog, run_cocotb, write_job


@dataclass
class LayerJob:
    """One layer to decode: its payload as stored and how it was coded."""

    name: str
    payload: bytes
    count: int
    bits: int
    mode: str
    slots: str
    block_bits: int
    expect_error: bool = False
    expected: np.ndarray | None = None  # defaults to sw_codec's decode of the payload
    stall_in: float = 0.0
    stall_out: float = 0.0
    cut: float | None = None  # keep only this fraction of each lane's stream (a truncated input)


@dataclass
class LayerResult:
    name: str
    weights: int
    cycles: int
    error: bool
    mismatches: int
    lanes: list = field(default_factory=list)

    @property
    def weights_per_cycle(self) -> float:
        return self.weights / self.cycles if self.cycles else 0.0

    @property
    def weights_per_cycle_per_lane(self) -> float:
        """Weights per cycle per lane over the whole layer, from ``clear`` to the last weight."""
        return self.weights_per_cycle / max(1, len(self.lanes))

    @property
    def sustained_per_lane(self) -> float:
        """Weights per cycle of the slowest lane from its first weight out to its last: the
        steady-state rate, without the fill latency of the first block (decoded whole before its
        first weight leaves) and the preamble."""
        rates = [(l["weights"] - 1) / (l["cycles"] - l["first_out"]) for l in self.lanes
                 if l.get("first_out") is not None and l["cycles"] and l["cycles"] > l["first_out"]]
        return min(rates) if rates else 0.0


def build_top(hw: DecoderParams):
    from hw.decoder_top import DecoderTop

    # Verilator mangles long module names, so the top is named by a digest of its parameters.
    top = "poscodec_decoder_" + hashlib.sha1(json.dumps(hw.as_dict(), sort_keys=True).encode()).hexdigest()[:10]
    path = generate_verilog(DecoderTop(lanes=hw.lanes, **hw.kwargs()), top)
    (path.parent / "params.json").write_text(json.dumps(hw.as_dict(), indent=1))
    return top, path


def run_layers(jobs: list[LayerJob], hw: DecoderParams, sim: str = "verilator", seed: int = 1,
               check: bool = True) -> list[LayerResult]:
    """Decode ``jobs`` in RTL on ``sim``; raises AssertionError on a mismatch if ``check``."""
    top, verilog = build_top(hw)
    layers = []
    for job in jobs:
        if job.bits != hw.weight_bits:
            raise ValueError(f"layer {job.name}: {job.bits}-bit weights on a {hw.weight_bits}-bit decoder")
        if job.mode != "raw" and job.block_bits > hw.block_bits:
            raise ValueError(f"layer {job.name}: blocks of 2**{job.block_bits} on a decoder for 2**{hw.block_bits}")
        expected = job.expected
        if expected is None and not job.expect_error:
            expected = decode_layer(job.payload, job.count, job.bits, job.mode, job.slots, job.block_bits)
        block_bits = job.block_bits if job.mode != "raw" else hw.block_bits
        streams = lane_streams(job.payload, job.count, job.bits, job.mode, block_bits, hw.lanes)
        n = 1 << block_bits
        lanes = []
        for s in streams:
            exp = [] if expected is None else np.concatenate(
                [expected[b * n:(b + 1) * n] for b in s.blocks] or [np.zeros(0, int)]).astype(int).tolist()
            data = s.data if job.cut is None else s.data[: int(len(s.data) * job.cut)]
            lanes.append({"data": data.hex(), "block_sizes": s.block_sizes, "expected": exp})
        layers.append({"name": job.name, "mode": Mode.of(job.mode), "slots": Slots.of(job.slots),
                       "layer_block_bits": block_bits, "lanes": lanes, "expect_error": job.expect_error,
                       "stall_in": job.stall_in, "stall_out": job.stall_out})
    body = {"lanes": hw.lanes, "word_bits": hw.word_bits, "weight_bits": hw.weight_bits, "seed": seed,
            "layers": layers}
    job_path, result_path = write_job(top, sim, body)
    failure = None
    try:
        run_cocotb(sim=sim, top_name=top, verilog=verilog, test_module="sim.tb_decoder",
                   params={"job": str(job_path)})
    except AssertionError as e:
        failure = e
    raw = json.loads(result_path.read_text()) if result_path.exists() else []
    results = [LayerResult(name=r["name"], weights=sum(l["weights"] for l in r["lanes"]),
                           cycles=r["cycles"], error=bool(r["error"]),
                           mismatches=sum(l["mismatches"] for l in r["lanes"]), lanes=r["lanes"]) for r in raw]
    if failure is not None and (check or not results):
        raise failure
    return results
