"""The accelerator datapath: the weight decoder feeding the PE array, lane to lane."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from .decoder_top import DecoderTop
from .pe_array import PEArray

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """:class:`DecoderTop` with ``lanes`` lanes, each lane's weights into its MAC of :class:`PEArray`.

    Main memory (the testbench's model, with its bandwidth and latency) feeds each lane's
    compressed stream (or the raw weights, decoded by the same path in ``raw`` mode); the
    activations are loaded into the PE array's buffer before ``start``.

    Parameters
    ----------
    lanes : int
        Decoder lanes = MACs.
    act_bits, acc_bits, max_k, max_rows : int
        Passed to :class:`PEArray`.
    repeat_aware : bool
        The PE array's repeat-aware compute (one multiply per run of equal weights); the decoder
        then sends its write stream (``in_order=False``) instead of in-order weights.
    **decoder_params
        Passed to :class:`DecoderTop` (``weight_bits``, ``block_bits``, ``word_bits``, ...).

    Members
    -------
    words_<i>, blocks_<i>, mode, slots, layer_block_bits, error
        As :class:`DecoderTop`.
    acts, y, rows, k, step_rows, step_cols, stride_rows, stride_cols, busy, streaming, done
        As :class:`PEArray`.
    start : ``In(1)``
        One-cycle pulse: ``clear`` to the decoder and ``start`` to the PE array.
    """

    def __init__(self, *, lanes=1, act_bits=8, acc_bits=32, max_k=1024, max_rows=256, repeat_aware=False,
                 row_lookahead=16, **decoder_params):
        self._decoder = DecoderTop(lanes=lanes, in_order=not repeat_aware, **decoder_params)
        p = self._decoder.params
        self._pe = PEArray(lanes=lanes, weight_bits=p["weight_bits"], act_bits=act_bits, acc_bits=acc_bits,
                           max_k=max_k, max_rows=max_rows, block_bits=p["block_bits"], repeat_aware=repeat_aware,
                           row_lookahead=row_lookahead)
        self.params = dict(p, act_bits=act_bits, acc_bits=acc_bits, max_k=max_k, max_rows=max_rows,
                           repeat_aware=repeat_aware)
        dec, pe = self._decoder.signature.members, self._pe.signature.members
        members = {}
        for i in range(lanes):
            members[f"words_{i}"] = dec[f"words_{i}"]
            members[f"blocks_{i}"] = dec[f"blocks_{i}"]
        for name in ("mode", "slots", "layer_block_bits", "error"):
            members[name] = dec[name]
        for name in ("acts", "y", "rows", "k", "step_rows", "step_cols", "stride_rows", "stride_cols",
                     "busy", "streaming", "done", "taken", "mults"):
            members[name] = pe[name]
        members["start"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.decoder = dec = self._decoder
        m.submodules.pe_array = pe = self._pe
        for i in range(self.params["lanes"]):
            wiring.connect(m, wiring.flipped(getattr(self, f"words_{i}")), getattr(dec, f"words_{i}"))
            wiring.connect(m, wiring.flipped(getattr(self, f"blocks_{i}")), getattr(dec, f"blocks_{i}"))
            wiring.connect(m, getattr(dec, f"weights_{i}"), getattr(pe, f"weights_{i}"))
        wiring.connect(m, wiring.flipped(self.acts), pe.acts)
        wiring.connect(m, pe.y, wiring.flipped(self.y))
        m.d.comb += [dec.mode.eq(self.mode), dec.slots.eq(self.slots), dec.layer_block_bits.eq(self.layer_block_bits),
                     dec.clear.eq(self.start), self.error.eq(dec.error), pe.start.eq(self.start)]
        for name in ("rows", "k", "step_rows", "step_cols", "stride_rows", "stride_cols"):
            m.d.comb += getattr(pe, name).eq(getattr(self, name))
        m.d.comb += [self.busy.eq(pe.busy), self.streaming.eq(pe.streaming), self.done.eq(pe.done),
                     self.taken.eq(pe.taken), self.mults.eq(pe.mults)]
        return m
