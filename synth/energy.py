"""Energy per decoded weight from switching activity (method and assumptions: docs/ENERGY.md).

:func:`simulate_lane` decodes a slice of a real layer on a :class:`hw.layer_decoder.LayerDecoder`
in the Amaranth simulator and writes a VCD; :func:`count_toggles` counts the bit toggles of every
net in it; :func:`energy` turns toggles into joules with ``E = 1/2 C V^2`` per toggle plus a
clock term per flip-flop and cycle. ``sw_codec`` is only used to make the input (a payload, as
the encoder stores it) and to check the decoded weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hw.params import LaneParams

__all__ = ["EnergyModel", "layer_slice", "simulate_lane", "count_toggles", "energy"]


@dataclass(frozen=True)
class EnergyModel:
    """Switched capacitance per net toggle and per flip-flop clock pin, and the supply voltage.

    Defaults are a 28 nm-class standard-cell estimate (docs/ENERGY.md): 2 fF for an average
    net (driver output, a short wire, two to three gate inputs), 1 fF for a flip-flop's clock
    pin with its share of the clock tree, 0.9 V.
    """

    net_cap_f: float = 2e-15
    clock_cap_per_ff_f: float = 1e-15
    vdd_v: float = 0.9

    @property
    def toggle_energy_j(self) -> float:
        return 0.5 * self.net_cap_f * self.vdd_v ** 2

    @property
    def clock_energy_per_ff_j(self) -> float:
        # The clock pin charges and discharges once per cycle: two toggles.
        return self.clock_cap_per_ff_f * self.vdd_v ** 2


def layer_slice(weights: int, bits: int = 8, model: str = "minilm", layer: str | None = None):
    """``(name, q)``: the first ``weights`` quantized weights of a real layer of a bundled model."""
    from sw_codec.models import bundled_model, load_model
    from sw_codec.quantization import quantize

    tensors = load_model(bundled_model(model))
    if layer is None:
        layer = next(k for k, v in tensors.items() if np.ndim(v) >= 2 and np.size(v) >= weights)
    q, _ = quantize(tensors[layer], bits, "tensor")
    return layer, q.ravel()[:weights]


def simulate_lane(config: LaneParams, q: np.ndarray, vcd_path: Path, *, mode: str = "huffman",
                  slots: str = "all", max_cycles: int = 200_000) -> dict:
    """Decode ``q`` (encoded by ``sw_codec``) on one lane; returns cycles, weights and mismatches."""
    from amaranth.sim import Simulator

    from hw.tokens import Mode, Slots
    from hw.layer_decoder import LayerDecoder
    from sw_codec.lanes import lane_streams
    from sw_codec.encoder import encode_layer

    P, bits, wb = config.block_bits, config.weight_bits, config.word_bits
    payload = encode_layer(q, bits, mode, slots, P)
    lane = lane_streams(payload, q.size, bits, mode, P, 1)[0]
    data = lane.data + bytes(-len(lane.data) % (wb // 8))
    words = [int.from_bytes(data[i:i + wb // 8], "little") for i in range(0, len(data), wb // 8)]

    dut = LayerDecoder(**config.kwargs())
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    out: list[int] = []
    cycles = [0]

    async def setup_and_words(ctx):
        ctx.set(dut.mode, Mode[mode.upper()])
        ctx.set(dut.slots, Slots[slots.upper()])
        ctx.set(dut.layer_block_bits, P)
        for i, w in enumerate(words):
            ctx.set(dut.words.payload.data, w)
            ctx.set(dut.words.payload.last, i == len(words) - 1)
            ctx.set(dut.words.valid, 1)
            await ctx.tick().until(dut.words.ready)
        ctx.set(dut.words.valid, 0)

    async def block_sizes(ctx):
        for n in lane.block_sizes:
            ctx.set(dut.blocks.payload, n)
            ctx.set(dut.blocks.valid, 1)
            await ctx.tick().until(dut.blocks.ready)
        ctx.set(dut.blocks.valid, 0)

    async def weights(ctx):
        ctx.set(dut.weights.ready, 1)
        while len(out) < q.size and cycles[0] < max_cycles:
            _, _, value, valid, error = await ctx.tick().sample(dut.weights.payload.value, dut.weights.valid,
                                                          dut.error)
            cycles[0] += 1
            if error:
                break
            if valid:
                out.append(value)

    sim.add_testbench(setup_and_words, background=True)
    sim.add_testbench(block_sizes, background=True)
    sim.add_testbench(weights)
    vcd_path = Path(vcd_path)
    vcd_path.parent.mkdir(parents=True, exist_ok=True)
    with sim.write_vcd(str(vcd_path)):
        sim.run()
    got = np.array(out, dtype=np.int64)
    n = min(got.size, q.size)
    return {
        "mode": mode, "slots": slots, "weights": int(q.size), "decoded": int(got.size),
        "cycles": cycles[0], "mismatches": int(np.count_nonzero(got[:n] != q[:n]) + (q.size - n)),
        "stream_bits": len(lane.data) * 8, "bits_per_weight": len(lane.data) * 8 / q.size,
    }


def count_toggles(vcd_path: Path, exclude=("clk",)) -> dict:
    """Bit toggles per net of a VCD, ``{name: toggles}``; memory rows are named ``mem[i]``.

    Vars sharing an id are one net, and vars whose whole waveform is identical (a port wired to
    a port) are counted once. A struct field (``payload.value``) is skipped when its whole
    signal is dumped too. ``x``/``z`` read as 0. An enum shown as a string (its name) counts one
    toggle per change.
    """
    vars_: dict[str, dict] = {}
    scope: list[str] = []
    declared: set[str] = set()
    last: dict[str, object] = {}
    toggles: dict[str, int] = {}
    history: dict[str, object] = {}
    time = 0
    with open(vcd_path) as f:
        for line in f:
            if line.startswith("$enddefinitions"):
                break
            tok = line.split()
            if not tok:
                continue
            if tok[0] == "$scope":
                scope.append(tok[2])
            elif tok[0] == "$upscope":
                scope.pop()
            elif tok[0] == "$var":
                code, raw = tok[3], tok[4].lstrip("\\")
                base = raw.split(".")[0]
                declared.add((tuple(scope), raw))
                vars_.setdefault(code, {"names": []})["names"].append((tuple(scope), raw, base))
        for line in f:
            line = line.strip()
            if not line or line[0] == "$":
                continue
            c = line[0]
            if c == "#":
                time = int(line[1:])
                continue
            if c in "bB":
                bits, code = line[1:].split()
                value = int(bits.replace("x", "0").replace("z", "0"), 2)
            elif c in "01xzXZ":
                code, value = line[1:], 1 if c == "1" else 0
            elif c in "sS":
                value, code = line[1:].rsplit(" ", 1)
            else:                               # a real value
                continue
            if code not in vars_:
                continue
            if code in last:
                old = last[code]
                toggles[code] = toggles.get(code, 0) + (
                    int(old != value) if isinstance(value, str) else bin(old ^ value).count("1"))
            last[code] = value
            history.setdefault(code, hashlib.sha1()).update(f"{time}:{value};".encode())

    nets: dict[str, int] = {}
    seen = set()
    for code, v in vars_.items():
        names = [".".join(sc + (raw,)) for sc, raw, base in v["names"]
                 if raw == base or (sc, base) not in declared]
        if not names:
            continue
        name = min(names, key=len)
        if name.split(".")[-1] in exclude:
            continue
        key = history[code].hexdigest() if code in history else code
        if key in seen:
            continue
        seen.add(key)
        nets[name] = toggles.get(code, 0)
    return nets


def energy(nets: dict, cycles: int, weights: int, n_ff: int | None, model: EnergyModel = EnergyModel()) -> dict:
    """Energy of a decode from its toggles (and ``n_ff`` flip-flops clocked every cycle)."""
    total = sum(nets.values())
    e_data = total * model.toggle_energy_j
    e_clock = (n_ff or 0) * cycles * model.clock_energy_per_ff_j
    top = sorted(nets.items(), key=lambda kv: -kv[1])[:10]
    return {
        "model": asdict(model),
        "toggle_energy_j": model.toggle_energy_j,
        "nets": len(nets),
        "toggles": total,
        "toggles_per_weight": total / weights,
        "flip_flops": n_ff,
        "energy_data_j": e_data,
        "energy_clock_j": e_clock,
        "energy_per_weight_j": (e_data + e_clock) / weights,
        "energy_per_weight_data_j": e_data / weights,
        "busiest_nets": [{"net": k, "toggles": v} for k, v in top],
    }
