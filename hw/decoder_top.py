"""The decoder top: ``lanes`` independent lanes decoding a layer's blocks in parallel."""

from amaranth.hdl import Cat, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .layer_decoder import LayerDecoder
from .tokens import Mode, Slots, weight_layout, word_layout, write_layout

__all__ = ["DecoderTop"]


class DecoderTop(wiring.Component):
    """``lanes`` copies of :class:`LayerDecoder` sharing the layer's parameters.

    Lane ``i`` decodes blocks ``i, i + lanes, i + 2 * lanes, ...`` of the layer from its own
    memory stream (the payload's preamble followed by those blocks; a DMA engine or the host
    builds it from the block table, see ``sw_codec.lanes``) and delivers them on its own weight
    stream, so ``lanes`` PE-array rows (or weight buffers) are fed in parallel: ``lanes``
    weights per cycle in total.

    Parameters
    ----------
    lanes : int
        Number of lanes, 1..64.
    **lane_params
        Passed to every :class:`LayerDecoder` (``weight_bits``, ``block_bits``, ``word_bits``,
        ``max_code_len``, ``num_tables``, ``scan_bits``).

    Members (Verilog port prefixes in parentheses)
    -------
    words_<i> : ``In(stream.Signature(StructLayout({"data": word_bits, "last": 1})))``
        Lane ``i``'s memory words (``words_<i>__valid``, ``__ready``, ``__payload``; ``data`` in
        the low ``word_bits`` of the payload, ``last`` above it).
    blocks_<i> : ``In(stream.Signature(range(2**block_bits + 1)))``
        Sizes of lane ``i``'s blocks, in order.
    weights_<i> : ``Out(stream.Signature(weight_layout(weight_bits)))``
        Lane ``i``'s weights in order (payload: ``value`` signed in the low ``weight_bits``,
        ``last`` of a block above it).
    mode : ``In(2)`` (raw 0, repeat 1, distance 2, huffman 3), slots : ``In(1)`` (all 0,
    free 1), layer_block_bits : ``In(5)``
        The layer's parameters (layer table); static during a layer.
    clear : ``In(1)``
        Start a new layer in every lane (synchronous, one cycle); reset (``rst``) does the same.
    error : ``Out(1)``
        Some lane found the stream malformed and stopped; sticky until ``clear``.
    error_lanes : ``Out(lanes)``
        Which lanes did.
    """

    def __init__(self, *, lanes=1, **lane_params):
        if not isinstance(lanes, int) or not 1 <= lanes <= 64:
            raise ValueError(f"lanes must be an integer in 1..64, not {lanes!r}")
        self.lanes = [LayerDecoder(**lane_params) for _ in range(lanes)]
        p = self.lanes[0].params
        self.params = dict(p, lanes=lanes)
        members = {}
        for i in range(lanes):
            members[f"words_{i}"] = In(stream.Signature(word_layout(p["word_bits"])))
            members[f"blocks_{i}"] = In(stream.Signature(range((1 << p["block_bits"]) + 1)))
            members[f"weights_{i}"] = Out(stream.Signature(
                weight_layout(p["weight_bits"]) if p["in_order"] else write_layout(p["weight_bits"], p["block_bits"])))
        members.update({
            "mode": In(Mode),
            "slots": In(Slots),
            "layer_block_bits": In(5),
            "clear": In(1),
            "error": Out(1),
            "error_lanes": Out(lanes),
        })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for i, lane in enumerate(self.lanes):
            m.submodules[f"lane_{i}"] = lane
            wiring.connect(m, wiring.flipped(getattr(self, f"words_{i}")), lane.words)
            wiring.connect(m, wiring.flipped(getattr(self, f"blocks_{i}")), lane.blocks)
            wiring.connect(m, lane.weights, wiring.flipped(getattr(self, f"weights_{i}")))
            m.d.comb += [
                lane.mode.eq(self.mode),
                lane.slots.eq(self.slots),
                lane.layer_block_bits.eq(self.layer_block_bits),
                lane.clear.eq(self.clear),
            ]
        m.d.comb += [
            self.error_lanes.eq(Cat(lane.error for lane in self.lanes)),
            self.error.eq(self.error_lanes.any()),
        ]
        return m
