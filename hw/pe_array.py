"""A weight-streaming MAC array matched to the decoder: one MAC per decoder lane."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .tokens import weight_layout

__all__ = ["PEArray", "layer_config"]


def layer_config(rows: int, k: int, block_bits: int, lanes: int) -> dict:
    """The array's layer parameters for a ``rows`` x ``k`` weight matrix cut into ``2**block_bits``
    blocks over ``lanes`` lanes (the compiler writes them into the layer table, like ``mode``):
    ``step`` = divmod(2**P, K) places lane ``i`` at block ``i``, ``stride`` = divmod(N * 2**P, K)
    moves a lane from one of its blocks to its next. With them the array needs no divider."""
    if rows < 1 or k < 1:
        raise ValueError(f"rows and k must be >= 1, not {rows} and {k}")
    step_rows, step_cols = divmod(1 << block_bits, k)
    stride_rows, stride_cols = divmod(lanes << block_bits, k)
    return dict(rows=rows, k=k, step_rows=step_rows, step_cols=step_cols,
                stride_rows=stride_rows, stride_cols=stride_cols)


class PEArray(wiring.Component):
    """``lanes`` multiply-accumulate units, lane ``i`` fed by decoder lane ``i``'s weight stream.

    Dataflow
    --------
    A layer is a weight matrix ``W`` of ``rows`` x ``k`` integers, flattened row-major: exactly the
    order the decoder's blocks cover it. The array computes ``y = W x`` for one activation vector
    ``x`` of ``k`` integers (a fully connected layer on one token). A matrix-matrix product repeats
    the layer per activation column (the weights are streamed once per column, or the array is
    widened with one accumulator set per column). A convolution runs through im2col: ``W`` is
    ``(C_out, C_in * kh * kw)`` and each output pixel's im2col column (its ``C_in x kh x kw``
    input patch, flattened in the same order) is an ``x``.

    Blocks of ``2**P`` weights go round robin to the lanes, so lane ``i`` sees flat indices
    ``b * 2**P + offset`` for its blocks ``b = i, i + N, ...``. Each lane tracks the (row, column)
    of its next weight with counters: +1 with wrap at ``k`` within a block, and at a block's
    ``last`` weight a jump to its next block by ``stride = divmod(N * 2**P, k)`` (host computed,
    :func:`layer_config`; no divider). The column addresses the lane's read port of the
    activation buffer (one :class:`lib.memory.Memory`, one read port per lane).

    Reduction: a lane's flat indices increase, so it visits each row in one contiguous run. It
    keeps the running sum of the current row in a register and writes it once, when its row
    changes, into its own accumulator memory (``max_rows`` entries, cleared when a layer starts).
    After the last weight the array reads row ``r`` of every lane's memory, adds them with an
    adder tree and sends ``(r, y[r])``: no arbitration, no read-modify-write.

    Parameters
    ----------
    lanes : int
        Number of lanes (MACs), 1..64; the decoder's ``lanes``.
    weight_bits : int
        Weight width (signed), 2..16.
    act_bits : int
        Activation width (signed), 2..16; default 8.
    acc_bits : int
        Accumulator and output width (signed); default 32. Sums wrap at this width.
    max_k : int
        Activation buffer depth: the largest ``k``.
    max_rows : int
        Accumulator depth: the largest ``rows``.
    block_bits : int
        The decoder's largest block, ``2**block_bits`` weights (sets counter widths).

    Members
    -------
    weights_<i> : ``In(stream.Signature(weight_layout(weight_bits)))``
        Lane ``i``'s weights in order (``value``, ``last`` of a block), as ``DecoderTop`` sends.
    acts : ``In(stream.Signature(StructLayout({"value": signed(act_bits), "last": 1})))``
        Activations ``x[0], x[1], ...`` written into the buffer in order; ``last`` on ``x[k-1]``
        returns the write address to 0. Load them before ``start`` (the buffer is not touched by
        ``start``, so ``x`` may be loaded while the previous layer's outputs drain).
    y : ``Out(stream.Signature(StructLayout({"row": ..., "value": signed(acc_bits), "last": 1})))``
        The outputs ``y[0] .. y[rows-1]`` in order, ``last`` on the final row.
    rows, k, step_rows, step_cols, stride_rows, stride_cols : ``In(...)``
        The layer's shape and block walk (:func:`layer_config`); static during a layer.
    start : ``In(1)``
        Start a layer (one-cycle pulse; also restarts a running one).
    busy, done : ``Out(1)``
        A layer is in progress; the last output was taken (until the next ``start``).
    streaming : ``Out(1)``
        The weight phase: after the clear, until every lane has taken its last weight.

    Timing
    ------
    ``start`` clears the accumulators in ``rows`` cycles; then every lane takes one weight per
    cycle while its ``weights_<i>`` is valid (ready is high until the lane has seen its last
    weight: the lane knows the layer's end from its position). Two cycles after the last weight
    the outputs start, one every two cycles (a read, then the transfer); ``y`` backpressure holds
    the output. ``weights_<i>`` is never stalled by the array except during the clear.
    """

    def __init__(self, *, lanes=1, weight_bits=8, act_bits=8, acc_bits=32, max_k=1024, max_rows=256,
                 block_bits=14):
        for name, value, lo, hi in (("lanes", lanes, 1, 64), ("weight_bits", weight_bits, 2, 16),
                                    ("act_bits", act_bits, 2, 16), ("acc_bits", acc_bits, 8, 64),
                                    ("max_k", max_k, 1, 1 << 20), ("max_rows", max_rows, 1, 1 << 20),
                                    ("block_bits", block_bits, 4, 16)):
            if not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
        self.params = dict(lanes=lanes, weight_bits=weight_bits, act_bits=act_bits, acc_bits=acc_bits,
                           max_k=max_k, max_rows=max_rows, block_bits=block_bits)
        self.n_lanes = lanes
        # A lane's position can run past the layer by one stride before it knows it is done.
        self._row_shape = unsigned((max_rows + (lanes << block_bits) + 1).bit_length())
        jump = range((lanes << block_bits) + 1)
        members = {f"weights_{i}": In(stream.Signature(weight_layout(weight_bits))) for i in range(lanes)}
        members.update({
            "acts": In(stream.Signature(data.StructLayout({"value": signed(act_bits), "last": 1}))),
            "y": Out(stream.Signature(data.StructLayout({
                "row": range(max_rows), "value": signed(acc_bits), "last": 1}))),
            "rows": In(range(max_rows + 1)),
            "k": In(range(max_k + 1)),
            "step_rows": In(jump), "step_cols": In(range(max_k)),
            "stride_rows": In(jump), "stride_cols": In(range(max_k)),
            "start": In(1),
            "busy": Out(1),
            "streaming": Out(1),
            "done": Out(1),
        })
        super().__init__(members)

    def _advance(self, m, row, col, d_rows, d_cols, name):
        """(row, col) + (d_rows, d_cols) with the column wrapping at ``k``: comb signals."""
        c = Signal(range(2 * self.params["max_k"]), name=f"{name}_c")
        r, cn = Signal(self._row_shape, name=f"{name}_row"), Signal(range(self.params["max_k"]), name=f"{name}_col")
        m.d.comb += c.eq(col + d_cols)
        with m.If(c >= self.k):
            m.d.comb += [cn.eq(c - self.k), r.eq(row + d_rows + 1)]
        with m.Else():
            m.d.comb += [cn.eq(c), r.eq(row + d_rows)]
        return r, cn

    def elaborate(self, platform):
        m = Module()
        p = self.params
        N = self.n_lanes
        prod_shape = signed(p["weight_bits"] + p["act_bits"])
        acc_shape = signed(p["acc_bits"])

        # Activation buffer: one write port (the acts stream), one read port per lane.
        m.submodules.act_buffer = act_mem = Memory(shape=signed(p["act_bits"]), depth=p["max_k"], init=[])
        act_wp = act_mem.write_port()
        act_rps = [act_mem.read_port() for _ in range(N)]
        act_addr = Signal(range(p["max_k"]))
        m.d.comb += [self.acts.ready.eq(1), act_wp.addr.eq(act_addr), act_wp.data.eq(self.acts.payload.value),
                     act_wp.en.eq(self.acts.valid)]
        with m.If(self.acts.valid):
            m.d.sync += act_addr.eq(Mux(self.acts.payload.last, 0, act_addr + 1))

        # Per-lane accumulator memories: one write port (clear, row flush), one read port (output).
        accs = []
        for i in range(N):
            mem = Memory(shape=acc_shape, depth=p["max_rows"], init=[])
            m.submodules[f"acc_{i}"] = mem
            accs.append((mem.write_port(), mem.read_port()))

        clear_row = Signal(range(p["max_rows"] + 1))
        out_row = Signal(range(p["max_rows"]))
        for _, rp in accs:
            m.d.comb += rp.addr.eq(out_row)

        # Lane starts: block i begins at i * 2**P, i.e. i steps of divmod(2**P, k) from (0, 0).
        starts = [(Signal(self._row_shape, name="start0_row"), Signal(range(p["max_k"]), name="start0_col"))]
        for i in range(1, N):
            starts.append(self._advance(m, *starts[-1], self.step_rows, self.step_cols, f"start{i}"))

        running = Signal()     # weights are being accepted (after the clear)
        clearing = Signal()    # zeroing the accumulators
        flush_all = Signal()   # after the last weight: every lane writes its running sum
        lane_done = []
        for i in range(N):
            w = getattr(self, f"weights_{i}")
            wp, _ = accs[i]
            rp = act_rps[i]
            pos_row, pos_col = Signal(self._row_shape, name=f"pos_row_{i}"), Signal(range(p["max_k"]), name=f"pos_col_{i}")
            blk_row, blk_col = Signal(self._row_shape, name=f"blk_row_{i}"), Signal(range(p["max_k"]), name=f"blk_col_{i}")
            nxt_row, nxt_col = self._advance(m, pos_row, pos_col, 0, 1, f"next{i}")
            jmp_row, jmp_col = self._advance(m, blk_row, blk_col, self.stride_rows, self.stride_cols, f"jump{i}")
            done_i = Signal(name=f"lane_done_{i}")
            m.d.comb += done_i.eq(pos_row >= self.rows)
            lane_done.append(done_i)

            # Stage 0: take a weight, read its activation, step the position.
            m.d.comb += [w.ready.eq(running & ~done_i), rp.addr.eq(pos_col)]
            take = w.valid & w.ready
            v1 = Signal(name=f"v1_{i}")
            w1 = Signal(signed(p["weight_bits"]), name=f"w1_{i}")
            r1 = Signal(self._row_shape, name=f"r1_{i}")
            m.d.sync += [v1.eq(take), w1.eq(w.payload.value), r1.eq(pos_row)]
            with m.If(take):
                with m.If(w.payload.last):
                    m.d.sync += [blk_row.eq(jmp_row), blk_col.eq(jmp_col), pos_row.eq(jmp_row), pos_col.eq(jmp_col)]
                with m.Else():
                    m.d.sync += [pos_row.eq(nxt_row), pos_col.eq(nxt_col)]
            with m.If(self.start):
                m.d.sync += [blk_row.eq(starts[i][0]), blk_col.eq(starts[i][1]),
                             pos_row.eq(starts[i][0]), pos_col.eq(starts[i][1])]

            # Stage 1: multiply, accumulate the row's running sum, write it out when the row changes.
            prod = Signal(prod_shape, name=f"prod_{i}")
            acc, acc_row, acc_valid = (Signal(acc_shape, name=f"sum_{i}"), Signal(self._row_shape, name=f"sum_row_{i}"),
                                       Signal(name=f"sum_valid_{i}"))
            m.d.comb += prod.eq(w1 * rp.data)
            flush = Signal(name=f"flush_{i}")
            with m.If(v1):
                m.d.sync += [acc_row.eq(r1), acc_valid.eq(1)]
                with m.If(acc_valid & (r1 == acc_row)):
                    m.d.sync += acc.eq(acc + prod)
                with m.Else():
                    m.d.sync += acc.eq(prod)
                    m.d.comb += flush.eq(acc_valid)
            with m.Elif(flush_all):
                m.d.comb += flush.eq(acc_valid)
                m.d.sync += acc_valid.eq(0)
            with m.If(self.start):
                m.d.sync += acc_valid.eq(0)
            with m.If(clearing):
                m.d.comb += [wp.addr.eq(clear_row), wp.data.eq(0), wp.en.eq(1)]
            with m.Else():
                m.d.comb += [wp.addr.eq(acc_row), wp.data.eq(acc), wp.en.eq(flush)]

        # Output: the adder tree over the lanes' accumulators of row `out_row`.
        total = _tree([rp.data for _, rp in accs], acc_shape)
        m.d.comb += [self.y.payload.row.eq(out_row), self.y.payload.value.eq(total),
                     self.y.payload.last.eq(out_row == self.rows - 1)]

        # `start` restarts from any state; the check comes last in a state so it takes priority.
        def restart():
            with m.If(self.start):
                m.next = "CLEAR"

        with m.FSM(name="pe_fsm"):
            with m.State("IDLE"):
                restart()
            with m.State("CLEAR"):
                m.d.comb += [self.busy.eq(1), clearing.eq(1)]
                m.d.sync += clear_row.eq(clear_row + 1)
                with m.If(clear_row == self.rows - 1):
                    m.next = "RUN"
                restart()
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), running.eq(1), self.streaming.eq(1)]
                with m.If(Cat(lane_done).all()):
                    m.next = "DRAIN"        # stage 1 finishes the last weights
                restart()
            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                m.next = "FLUSH"
                restart()
            with m.State("FLUSH"):
                m.d.comb += [self.busy.eq(1), flush_all.eq(1)]
                m.d.sync += out_row.eq(0)
                m.next = "READ"
                restart()
            with m.State("READ"):           # the accumulators' read ports see out_row
                m.d.comb += self.busy.eq(1)
                m.next = "OUT"
                restart()
            with m.State("OUT"):
                m.d.comb += [self.busy.eq(1), self.y.valid.eq(1)]
                with m.If(self.y.ready):
                    with m.If(self.y.payload.last):
                        m.next = "DONE"
                    with m.Else():
                        m.d.sync += out_row.eq(out_row + 1)
                        m.next = "READ"
                restart()
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                restart()
        with m.If(self.start):
            m.d.sync += clear_row.eq(0)
        return m


def _tree(values, shape):
    """Sum of ``values`` as a balanced adder tree (the caller truncates to ``shape``)."""
    values = list(values)
    while len(values) > 1:
        values = [values[j] + values[j + 1] if j + 1 < len(values) else values[j]
                  for j in range(0, len(values), 2)]
    return values[0]
