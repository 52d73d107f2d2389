"""A weight-streaming MAC array matched to the decoder: one MAC per decoder lane."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .tokens import TokenKind, activation_layout, weight_layout, write_layout

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
    repeat_aware : bool
        Compute with one multiply per run of equal weights instead of one per weight (below).
    row_lookahead : int
        Repeat-aware only: rows a lane's position search crosses in one cycle (below).

    Repeat-aware compute (``repeat_aware=True``)
    --------------------------------------------
    ``weights_<i>`` then carries the decoder's *write stream* (``write_layout``; the decoder with
    ``in_order=False``, no block buffer): per block ``BLOCK`` (implicit value ``v0``, size
    ``n``), the ``MEMBER`` writes (``value``, in-block ``position``) grouped by value with
    increasing positions inside a group, ``END``. With ``y[r] = sum_c W[r, c] x[c]`` and every
    slot of a block not written holding ``v0``::

        y[r] += sum_g (v_g - v0) * S_g,r  +  v0 * X_r

    where ``S_g,r`` is the sum of the activations at group ``g``'s positions in row ``r`` and
    ``X_r`` the sum of the activations over the block's columns in row ``r``. A lane adds
    ``x[col]`` of consecutive members of one value in one row (one adder, no multiply) and
    multiplies once when the value or the row changes: a *run*. ``X_r`` comes from a prefix-sum
    copy of the activation buffer (``P[c] = x[0] + ... + x[c-1]``, written as ``x`` is loaded):
    after ``END`` the lane sweeps the block's rows, one per cycle, ``X_r = P[c_end] - P[c_start]``,
    and multiplies by ``v0``. Multiplies per block: runs + rows the block touches, instead of
    ``n``. A multiply's operands are wider (``b + 1`` x ``act_bits + P`` bits instead of ``b`` x
    ``act_bits``).

    Position to (row, column) without a divider: ``q = position + block column`` is compared
    with ``row_lookahead`` row boundaries ahead of the lane's current row (adders and
    comparators); a group restarts the search at the block's first row. A member further
    ahead costs a stall cycle per ``row_lookahead`` rows. Each run and sweep result is added
    into the lane's accumulator memory by read-modify-write (one transparent read port more;
    a row gets several additions per block, one per value present in it). The order of the
    write stream needs no extra buffering: runs are found on the fly, since positions increase
    within a group. The implicit value's positions are never visited (the expander's block
    buffer is not needed either), so a lane takes only ``n - count(v0) + 2`` tokens per block.
    The position check of the in-order expander (a write at ``position >= n``) is not done here.

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
    taken, mults : ``Out(lanes)``
        Per lane, this cycle: a weight (token) was taken; a multiply was started (event counts
        for the energy model; in the plain array every weight is one multiply).

    Timing
    ------
    ``start`` clears the accumulators in ``rows`` cycles; then every lane takes one weight per
    cycle while its ``weights_<i>`` is valid (ready is high until the lane has seen its last
    weight: the lane knows the layer's end from its position). Two cycles after the last weight
    the outputs start, one every two cycles (a read, then the transfer); ``y`` backpressure holds
    the output. ``weights_<i>`` is never stalled by the array except during the clear.
    """

    def __init__(self, *, lanes=1, weight_bits=8, act_bits=8, acc_bits=32, max_k=1024, max_rows=256,
                 block_bits=14, repeat_aware=False, row_lookahead=16):
        for name, value, lo, hi in (("lanes", lanes, 1, 64), ("weight_bits", weight_bits, 2, 16),
                                    ("act_bits", act_bits, 2, 16), ("acc_bits", acc_bits, 8, 64),
                                    ("max_k", max_k, 1, 1 << 20), ("max_rows", max_rows, 1, 1 << 20),
                                    ("block_bits", block_bits, 4, 16), ("row_lookahead", row_lookahead, 1, 64)):
            if not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
        if not isinstance(repeat_aware, bool):
            raise TypeError(f"repeat_aware must be a bool, not {repeat_aware!r}")
        self.params = dict(lanes=lanes, weight_bits=weight_bits, act_bits=act_bits, acc_bits=acc_bits,
                           max_k=max_k, max_rows=max_rows, block_bits=block_bits, repeat_aware=repeat_aware,
                           row_lookahead=row_lookahead)
        self.n_lanes = lanes
        self.repeat_aware = repeat_aware
        # A lane's position can run past the layer by one stride before it knows it is done.
        self._row_shape = unsigned((max_rows + (lanes << block_bits) + 1).bit_length())
        jump = range((lanes << block_bits) + 1)
        lane_layout = write_layout(weight_bits, block_bits) if repeat_aware else weight_layout(weight_bits)
        members = {f"weights_{i}": In(stream.Signature(lane_layout)) for i in range(lanes)}
        members.update({
            "acts": In(stream.Signature(activation_layout(act_bits))),
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
            "taken": Out(lanes),
            "mults": Out(lanes),
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

        pre_rps = []
        if self.repeat_aware:
            # Prefix sums of the activations: entry j holds x[0] + ... + x[j] (one read port per lane).
            m.submodules.prefix_buffer = pre_mem = Memory(shape=self._prefix_shape(), depth=p["max_k"], init=[])
            pre_wp = pre_mem.write_port()
            pre_rps = [pre_mem.read_port() for _ in range(N)]
            run_sum = Signal(self._prefix_shape())
            m.d.comb += [pre_wp.addr.eq(act_addr), pre_wp.data.eq(run_sum + self.acts.payload.value),
                         pre_wp.en.eq(self.acts.valid)]
            with m.If(self.acts.valid):
                m.d.sync += run_sum.eq(Mux(self.acts.payload.last, 0, run_sum + self.acts.payload.value))

        # Per-lane accumulator memories: one write port (clear, row flush), one read port (output);
        # repeat-aware: a read port for the read-modify-write, transparent for the write port.
        accs, rmw_rps = [], []
        for i in range(N):
            mem = Memory(shape=acc_shape, depth=p["max_rows"], init=[])
            m.submodules[f"acc_{i}"] = mem
            wp = mem.write_port()
            accs.append((wp, mem.read_port()))
            if self.repeat_aware:
                rmw_rps.append(mem.read_port(transparent_for=(wp,)))

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
            if self.repeat_aware:
                lane_done.append(self._repeat_lane(m, i, w, wp, rmw_rps[i], rp, pre_rps[i], starts[i],
                                                   running, clearing, clear_row))
                continue
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
            m.d.comb += [self.taken[i].eq(take), self.mults[i].eq(take)]
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


    def _prefix_shape(self):
        return signed(self.params["act_bits"] + self.params["max_k"].bit_length() + 1)

    def _repeat_lane(self, m, i, w, wp, rmw, act_rp, pre_rp, start, running, clearing, clear_row):
        """Lane ``i`` of the repeat-aware array (see the class docstring); returns its done signal."""
        p = self.params
        P, WB, J = p["block_bits"], p["weight_bits"], p["row_lookahead"]
        acc_shape = signed(p["acc_bits"])
        qmax = p["max_k"] * (J + 2) + (1 << P)
        qshape = unsigned(qmax.bit_length())
        sum_shape = signed(p["act_bits"] + P + 1)
        R = self._row_shape

        def sig(shape, name):
            return Signal(shape, name=f"{name}_{i}")

        blk_row, blk_col = sig(R, "ra_blk_row"), sig(range(p["max_k"]), "ra_blk_col")
        jmp_row, jmp_col = self._advance(m, blk_row, blk_col, self.stride_rows, self.stride_cols, f"ra_jump{i}")
        implicit, n = sig(signed(WB), "implicit"), sig(P + 1, "n")
        sweeping = sig(1, "sweeping")
        rk, roff = sig(qshape, "rk"), sig(R, "roff")     # search base: row offset roff starts at q = rk
        hold, have_pos, last_pos = sig(1, "hold"), sig(1, "have_pos"), sig(P + 1, "last_pos")
        done_i = sig(1, "ra_done")
        m.d.comb += done_i.eq((blk_row >= self.rows) & ~sweeping)

        # Stage 0: a token; for a member, its row and column from q = position + block column.
        tok = w.payload
        is_member, is_block, is_end = (tok.kind == TokenKind.MEMBER, tok.kind == TokenKind.BLOCK,
                                       tok.kind == TokenKind.END)
        q = sig(qshape, "q")
        m.d.comb += q.eq(tok.position + blk_col)
        restart = sig(1, "restart")
        m.d.comb += restart.eq(~hold & (~have_pos | (tok.position <= last_pos)))
        base_rk, base_r = sig(qshape, "base_rk"), sig(R, "base_r")
        m.d.comb += [base_rk.eq(Mux(restart, 0, rk)), base_r.eq(Mux(restart, 0, roff))]
        lo = []
        for j in range(J + 1):
            b = sig(qshape, f"lo{j}")
            m.d.comb += b.eq(base_rk + self.k * j)
            lo.append(b)
        below = [q < lo[j + 1] for j in range(J)]      # q is in row base_r + j or before
        found = sig(1, "found")
        m.d.comb += found.eq(Cat(below).any())
        jsel, col_base = sig(range(J + 1), "jsel"), sig(qshape, "col_base")
        m.d.comb += [jsel.eq(J), col_base.eq(lo[J])]
        for j in reversed(range(J)):                   # the first j whose boundary lies beyond q
            with m.If(below[j]):
                m.d.comb += [jsel.eq(j), col_base.eq(lo[j])]
        col = sig(range(p["max_k"]), "ra_col")
        m.d.comb += col.eq(q - col_base)

        stall = w.valid & is_member & ~found
        m.d.comb += w.ready.eq(running & ~sweeping & ~done_i & ~stall)
        take = w.valid & w.ready
        m.d.comb += [self.taken[i].eq(take), act_rp.addr.eq(col)]
        with m.If(running & ~sweeping & ~done_i & w.valid & is_member & ~found):
            m.d.sync += [rk.eq(lo[J]), roff.eq(base_r + J), hold.eq(1)]

        v1, end1, blk1 = sig(1, "ra_v1"), sig(1, "ra_end1"), sig(1, "ra_blk1")
        val1, row1 = sig(signed(WB), "ra_val1"), sig(R, "ra_row1")
        m.d.sync += [v1.eq(take & is_member), end1.eq(take & is_end), blk1.eq(take & is_block),
                     val1.eq(tok.value), row1.eq(blk_row + base_r + jsel)]
        with m.If(take & is_member):
            m.d.sync += [rk.eq(col_base), roff.eq(base_r + jsel), hold.eq(0), last_pos.eq(tok.position),
                         have_pos.eq(1)]
        with m.If(take & is_block):
            m.d.sync += [implicit.eq(tok.value), n.eq(tok.position), have_pos.eq(0), hold.eq(0)]

        # Sweep after END: the implicit value times the block's activations in each row it touches.
        sweep_rk, sweep_r = sig(qshape, "sweep_rk"), sig(R, "sweep_r")
        end_q = sig(qshape, "end_q")
        m.d.comb += end_q.eq(blk_col + n)
        active = sig(1, "sweep_active")
        m.d.comb += active.eq(sweeping & (sweep_rk < end_q))
        c_end = sig(qshape, "c_end")
        m.d.comb += c_end.eq(Mux(end_q - sweep_rk > self.k, self.k, end_q - sweep_rk))
        pz = sig(1, "pre_zero")
        # The prefix port: P[c] = entry c - 1, or 0 for c = 0.
        with m.If(sweeping):
            m.d.comb += pre_rp.addr.eq(c_end - 1)
        with m.Else():
            m.d.comb += pre_rp.addr.eq(blk_col - 1)
        m.d.sync += pz.eq(~sweeping & (blk_col == 0))
        with m.If(take & is_end):
            m.d.sync += [sweeping.eq(1), sweep_rk.eq(0), sweep_r.eq(0)]
        with m.If(sweeping):
            with m.If(active):
                m.d.sync += [sweep_rk.eq(sweep_rk + self.k), sweep_r.eq(sweep_r + 1)]
            with m.Else():
                m.d.sync += [sweeping.eq(0), blk_row.eq(jmp_row), blk_col.eq(jmp_col)]
        sv1, sfirst1, srow1 = sig(1, "sv1"), sig(1, "sfirst1"), sig(R, "srow1")
        m.d.sync += [sv1.eq(active), sfirst1.eq(sweep_r == 0), srow1.eq(blk_row + sweep_r)]

        # Stage 1: runs of one value in one row: add activations, multiply at the run's end.
        pstart = sig(self._prefix_shape(), "pstart")
        with m.If(blk1):
            m.d.sync += pstart.eq(Mux(pz, 0, pre_rp.data))
        run_valid, run_val, run_row, S = (sig(1, "run_valid"), sig(signed(WB), "run_val"), sig(R, "run_row"),
                                          sig(sum_shape, "run_sum"))
        x = act_rp.data
        flush, f_row, f_val = sig(1, "ra_flush"), sig(R, "ra_flush_row"), sig(acc_shape, "ra_flush_val")
        run_prod = sig(acc_shape, "run_prod")
        m.d.comb += run_prod.eq((run_val - implicit) * S)
        with m.If(v1):
            with m.If(run_valid & (val1 == run_val) & (row1 == run_row)):
                m.d.sync += S.eq(S + x)
            with m.Else():
                m.d.sync += [S.eq(x), run_val.eq(val1), run_row.eq(row1), run_valid.eq(1)]
                m.d.comb += [flush.eq(run_valid), f_row.eq(run_row), f_val.eq(run_prod)]
        with m.Elif(end1):
            m.d.sync += run_valid.eq(0)
            m.d.comb += [flush.eq(run_valid), f_row.eq(run_row), f_val.eq(run_prod)]
        with m.Elif(sv1):
            seg = pre_rp.data - Mux(sfirst1, pstart, 0)
            m.d.comb += [flush.eq(1), f_row.eq(srow1), f_val.eq(implicit * seg)]
        m.d.comb += self.mults[i].eq(flush)

        # Read-modify-write of the lane's accumulator memory (the read is transparent for the
        # write, so back-to-back additions to one row are exact).
        f2, f2_row, f2_val = sig(1, "ra_f2"), sig(R, "ra_f2_row"), sig(acc_shape, "ra_f2_val")
        m.d.sync += [f2.eq(flush), f2_row.eq(f_row), f2_val.eq(f_val)]
        m.d.comb += rmw.addr.eq(f_row)
        with m.If(clearing):
            m.d.comb += [wp.addr.eq(clear_row), wp.data.eq(0), wp.en.eq(1)]
        with m.Else():
            m.d.comb += [wp.addr.eq(f2_row), wp.data.eq(rmw.data + f2_val), wp.en.eq(f2)]

        with m.If(self.start):
            m.d.sync += [blk_row.eq(start[0]), blk_col.eq(start[1]), sweeping.eq(0), hold.eq(0), have_pos.eq(0),
                         run_valid.eq(0), f2.eq(0)]
        return done_i


def _tree(values, shape):
    """Sum of ``values`` as a balanced adder tree (the caller truncates to ``shape``)."""
    values = list(values)
    while len(values) > 1:
        values = [values[j] + values[j + 1] if j + 1 < len(values) else values[j]
                  for j in range(0, len(values), 2)]
    return values[0]
