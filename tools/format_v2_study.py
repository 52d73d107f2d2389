"""Format v2 study (issue 25): what each bitstream choice costs, measured on the bundled models.

Usage::

    PYTHONPATH=. python tools/format_v2_study.py [--models ...] [--block-bits 12 14]
    PYTHONPATH=. python tools/format_v2_study.py --selftest

For every bundled model, every ``make bench`` setting (``sw_codec.bench.SETTINGS``) and each block
size, over the tensors of two or more dimensions, side by side in one run:

1. today's ``huffman/free`` size, recounted field by field and checked against
   ``sw_codec.encoder.payload_size``;
2. the same with code lengths limited to 12, 11, 10, 9 bits (the search's ``max_code_length``),
   and the share of decoded symbols with codes longer than 8 bits (a 2-level table's second level);
3. where the bits go: Huffman symbols against their entropy (and with finer table classes), raw
   Rice remainders against coding their top bits with the symbol (finer quotient classes), count
   and value headers against their empirical entropy, against a layer-histogram model and
   against concrete codes (Exp-Golomb order per context; a bucket-and-mantissa Huffman code per
   context; the same buckets in tANS, one state per block's header section);
4. tANS (FSE-style normalized counts, table log 9, 10, 11) for the member symbols, 4 interleaved
   states per block, encoded for real and decoded back on every layer;
5. the padding of 4 member streams dealt round-robin and a separate header section, each padded
   to a word of 8, 16 or 32 bits;
6. fields per weight and weights/cycle ceilings at blocks of 2^6, 2^8, 2^12, 2^14;
7. the container's layer table against a compact directory;

and whole-payload totals of every (member coder, header code, layout) combination, with the
candidates of ``CANDIDATES`` checked against the ``make bench`` rows and zstd -19.

Prints a table per measure and writes ``results/format_v2_study.json``. Nothing here changes the
codec: it only reads ``sw_codec``'s internals.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sw_codec.analysis import Groups, analyze
from sw_codec.baselines import entropy_bits
from sw_codec.bench import SETTINGS
from sw_codec.bits import bit_length, exp_golomb_length
from sw_codec.container import LayerRecord
from sw_codec.encoder import _group_header_codes, _huffman_codes, _preamble_bytes, payload_size
from sw_codec.format import (BLOCK_OFFSET_BYTES, COUNT_BITS, COUNT_K_BITS, HEADER, LENGTH_BITS, RICE_BIAS_BITS,
                             SYMBOL_BITS, TABLES_LOG2_BITS)
from sw_codec.huffman import code_lengths, rice_context
from sw_codec.models import BUNDLED, bundled_model, load_model
from sw_codec.quantization import quantize
from sw_codec.search import choose_params

#: Member streams of the v2 block (members dealt round-robin) and the word sizes measured.
STREAMS = 4
WORDS = (8, 16, 32)
CODE_LIMITS = (15, 12, 11, 10, 9)
#: A 2-level decode table looks up this many bits first.
FIRST_LEVEL_BITS = 8
#: The code length limit of the Huffman variants that fold remainder bits or code headers.
V2_HUFFMAN_LIMIT = 11
#: tANS runs: (table log, remainder bits folded into the symbol).
TANS_RUNS = ((9, 0), (10, 0), (11, 0), (10, 1), (11, 1), (11, 2))
THROUGHPUT_BLOCK_BITS = (6, 8, 12, 14)
#: Table log of the header section's tANS code (one state per block, off the member path).
HEADER_TABLE_LOG = 10


# ---- tANS ------------------------------------------------------------------------------------

def normalize_counts(hist: np.ndarray, table_log: int) -> np.ndarray:
    """Counts summing to ``2**table_log``, every used symbol at least 1 (as FSE's normalized
    counts), rounded for the least coded size ``-sum(hist * log2(n / 2**table_log))``: the
    floor of the proportional share, then +-1 steps to the symbols that gain (lose) the most
    (least), several distinct symbols a round."""
    hist = np.asarray(hist, dtype=np.int64)
    size = 1 << table_log
    used = hist > 0
    if used.sum() > size:
        raise ValueError(f"{int(used.sum())} symbols do not fit a table of {size} states")
    total = int(hist.sum())
    if total == 0:
        return np.zeros(len(hist), dtype=np.int64)
    n = np.where(used, np.maximum(1, hist * size // total), 0)
    while (diff := size - int(n.sum())) != 0:
        if diff > 0:
            gain = np.where(used, hist * np.log2((n + 1) / np.maximum(n, 1)), -np.inf)
            take = np.argsort(-gain, kind="stable")[: min(diff, int(used.sum()))]
            n[take] += 1
        else:
            loss = np.where(n > 1, hist * np.log2(np.maximum(n, 2) / np.maximum(n - 1, 1)), np.inf)
            take = np.argsort(loss, kind="stable")[: min(-diff, int((n > 1).sum()))]
            n[take] -= 1
    return n


def spread_symbols(counts: np.ndarray, table_log: int) -> np.ndarray:
    """FSE's symbol spread: state slot of each symbol occurrence, stepping by
    ``size/2 + size/8 + 3`` (odd, so every slot is visited once), symbols in increasing order."""
    size = 1 << table_log
    step = (size >> 1) + (size >> 3) + 3
    table = np.empty(size, dtype=np.int64)
    table[(np.arange(size) * step) & (size - 1)] = np.repeat(np.arange(len(counts)), counts)
    return table


class _LsbWriter:
    def __init__(self):
        self.value, self.bits = 0, 0

    def write(self, value: int, nbits: int) -> None:
        self.value |= value << self.bits
        self.bits += nbits


class _LsbReader:
    def __init__(self, value: int, bits: int):
        self.value, self.pos, self.bits = value, 0, bits

    def peek(self, nbits: int) -> int:
        return (self.value >> self.pos) & ((1 << nbits) - 1)

    def skip(self, nbits: int) -> None:
        self.pos += nbits
        if self.pos > self.bits:
            raise ValueError("NCount read past its end")


def write_ncount(counts, table_log: int) -> _LsbWriter:
    """FSE's table description (``FSE_writeNCount``: 4 bits of table log, then each count in a
    variable number of bits bounded by the probability left, runs of zero counts in 2-bit
    repeats), LSB first; no ``-1`` (low probability) counts."""
    w = _LsbWriter()
    w.write(table_log - 5, 4)
    size = 1 << table_log
    remaining, threshold, nbits = size + 1, size, table_log + 1
    symbol, previous_zero = 0, False
    counts = [int(c) for c in counts]
    while symbol < len(counts) and remaining > 1:
        if previous_zero:
            start = symbol
            while symbol < len(counts) and counts[symbol] == 0:
                symbol += 1
            if symbol == len(counts):
                raise ValueError("counts do not sum to the table size")
            while symbol >= start + 24:
                start += 24
                w.write(0xFFFF, 16)
            while symbol >= start + 3:
                start += 3
                w.write(3, 2)
            w.write(symbol - start, 2)
        count = counts[symbol]
        symbol += 1
        largest = 2 * threshold - 1 - remaining
        remaining -= count
        count += 1
        if count >= threshold:
            count += largest
        w.write(count, nbits - (count < largest))
        previous_zero = count == 1
        if remaining < 1:
            raise ValueError("counts exceed the table size")
        while remaining < threshold:
            nbits -= 1
            threshold >>= 1
    if remaining != 1:
        raise ValueError("counts do not sum to the table size")
    return w


def read_ncount(w: _LsbWriter, alphabet: int) -> tuple[list[int], int]:
    """``FSE_readNCount``: (counts over ``alphabet`` symbols, table log) of :func:`write_ncount`'s bits."""
    r = _LsbReader(w.value, w.bits)
    table_log = r.peek(4) + 5
    r.skip(4)
    size = 1 << table_log
    remaining, threshold, nbits = size + 1, size, table_log + 1
    counts = [0] * alphabet
    symbol, previous_zero = 0, False
    while remaining > 1:
        if previous_zero:
            n0 = symbol
            while r.peek(16) == 0xFFFF:
                n0 += 24
                r.skip(16)
            while r.peek(2) == 3:
                n0 += 3
                r.skip(2)
            n0 += r.peek(2)
            r.skip(2)
            symbol = n0
        largest = 2 * threshold - 1 - remaining
        if r.peek(nbits - 1) & (threshold - 1) < largest:
            count = r.peek(nbits - 1) & (threshold - 1)
            r.skip(nbits - 1)
        else:
            count = r.peek(nbits)
            if count >= threshold:
                count -= largest
            r.skip(nbits)
        count -= 1
        remaining -= count
        counts[symbol] = count
        symbol += 1
        previous_zero = count == 0
        while remaining < threshold:
            nbits -= 1
            threshold >>= 1
    if r.pos != w.bits:
        raise ValueError("NCount has bits left over")
    return counts, table_log


def ncount_bits(counts, table_log: int) -> int:
    return write_ncount(counts, table_log).bits


class TansTables:
    """Several tANS tables of one table log as flat arrays, so that a state can move from one
    table to the next (every table has the same ``2**table_log`` states): the decoder needs only
    to know each symbol's table, as it knows each group's Huffman table today.

    Global symbol ``g`` is symbol ``g - symbol_base[t]`` of table ``t``. Encoding symbol ``g``
    from state ``x`` in ``[size, 2 size)``: ``nb = high[g] - (x < threshold[g])`` bits leave,
    then ``x = encode_state[(x >> nb) + delta[g]]``. Decoding from ``x``: the slot
    ``u = t * size + x - size`` gives the symbol and ``x' = next[u]`` in ``[n, 2n)``; then
    ``nb = table_log + 1 - bitlen(x')`` bits are read and ``x = x' << nb | bits``.
    """

    def __init__(self, counts: list[np.ndarray], table_log: int):
        self.table_log = table_log
        size = self.size = 1 << table_log
        self.counts = [np.asarray(c, dtype=np.int64) for c in counts]
        self.symbol_base = np.cumsum([0] + [len(c) for c in self.counts])
        n = np.concatenate(self.counts + [np.zeros(0, np.int64)])
        spreads = [spread_symbols(c, table_log) if c.sum() else np.zeros(size, np.int64) for c in self.counts]
        cumul = np.concatenate([np.cumsum(c) - c for c in self.counts] + [np.zeros(0, np.int64)])
        table_of_symbol = np.repeat(np.arange(len(self.counts)), [len(c) for c in self.counts])
        low = np.maximum(bit_length(n) - 1, 0)
        self.high = (table_log - low).astype(np.int64)
        self.threshold = n << self.high
        self.delta = table_of_symbol * size + cumul - n
        enc, dec_symbol, dec_next = [], [], []
        for c, spread in zip(self.counts, spreads):
            order = np.argsort(spread, kind="stable")        # slots grouped by symbol, in slot order
            enc.append(size + order)
            rank = np.empty(size, dtype=np.int64)
            rank[order] = np.arange(size) - (np.cumsum(c) - c)[spread[order]]
            dec_symbol.append(spread)
            dec_next.append(c[spread] + rank)
        self.encode_state = np.concatenate(enc) if enc else np.zeros(0, np.int64)
        self.decode_symbol = np.concatenate(dec_symbol) if dec_symbol else np.zeros(0, np.int64)
        self.decode_next = np.concatenate(dec_next) if dec_next else np.zeros(0, np.int64)


def normalized_cost(hists: list[np.ndarray], counts: list[np.ndarray], table_log: int) -> float:
    """The ideal cost of the histograms under normalized counts, ``sum(h * log2(2**table_log / n))``."""
    total = 0.0
    for h, c in zip(hists, counts):
        used = h > 0
        total += float((h[used] * (table_log - np.log2(c[used]))).sum())
    return total


def tans_encode(tables: TansTables, table: np.ndarray, symbol: np.ndarray, stream: np.ndarray, step: np.ndarray,
                streams: int):
    """Encode members (each: its table, symbol, stream and step within the stream), every
    stream from its last symbol back, all streams at once. Returns per member the bits it leaves
    (``nb``) and their value, in the order the decoder reads them right after decoding that
    member, and per stream its final state (the decoder's first, ``table_log`` bits)."""
    size = tables.size
    g = tables.symbol_base[table] + symbol
    order = np.argsort(step, kind="stable")
    bounds = np.searchsorted(step[order], np.arange(int(step.max(initial=-1)) + 2))
    st = stream[order]
    high, threshold, delta = tables.high[g[order]], tables.threshold[g[order]], tables.delta[g[order]]
    state = np.full(streams, size, dtype=np.int64)
    nb = np.empty(len(order), dtype=np.int64)
    value = np.empty(len(order), dtype=np.int64)
    for t in range(len(bounds) - 2, -1, -1):
        s = slice(bounds[t], bounds[t + 1])
        at = st[s]
        x = state[at]
        n = high[s] - (x < threshold[s])
        nb[s] = n
        value[s] = x & ((1 << n) - 1)
        state[at] = tables.encode_state[(x >> n) + delta[s]]
    nb_out, value_out = np.empty_like(nb), np.empty_like(value)
    nb_out[order], value_out[order] = nb, value
    return nb_out, value_out, state


def tans_decode(tables: TansTables, table: np.ndarray, stream: np.ndarray, step: np.ndarray, first_state: np.ndarray,
                value: np.ndarray):
    """Decode what :func:`tans_encode` wrote: per member (table, stream, step known from the
    headers) its symbol and the bits it read; returns (symbols, nb, final states). The bits come
    from ``value`` of the member, so a decoder that reads another count of bits than the
    encoder left shows up as a different ``nb``."""
    size, log = tables.size, tables.table_log
    order = np.argsort(step, kind="stable")
    bounds = np.searchsorted(step[order], np.arange(int(step.max(initial=-1)) + 2))
    st, base, val = stream[order], table[order] * size - size, value[order]
    state = first_state.copy()
    symbol = np.empty(len(order), dtype=np.int64)
    nb = np.empty(len(order), dtype=np.int64)
    bitlen = bit_length(np.arange(2 * size))
    for t in range(len(bounds) - 1):
        s = slice(bounds[t], bounds[t + 1])
        at = st[s]
        u = base[s] + state[at]
        symbol[s] = tables.decode_symbol[u]
        x1 = tables.decode_next[u]
        n = log + 1 - bitlen[x1]
        nb[s] = n
        state[at] = (x1 << n) | (val[s] & ((1 << n) - 1))
    symbol_out, nb_out = np.empty_like(symbol), np.empty_like(nb)
    symbol_out[order], nb_out[order] = symbol, nb
    return symbol_out, nb_out, state


def tans_pack(tables: TansTables, table, symbol, streams: int = STREAMS) -> tuple[int, int]:
    """One block's members coded with ``streams`` interleaved states into one bit stream (a
    Python int, MSB first, and its length): the final state of each used stream in
    ``table_log`` bits, then each member's bits in decode order (member ``i`` in stream
    ``i % streams``). Scalar: the reference the vectorized coder is tested against."""
    size = tables.size
    state = [size] * streams
    emitted = []
    for i in range(len(symbol) - 1, -1, -1):
        g = int(tables.symbol_base[table[i]] + symbol[i])
        x = state[i % streams]
        n = int(tables.high[g]) - (x < int(tables.threshold[g]))
        emitted.append((x & ((1 << n) - 1), n))
        state[i % streams] = int(tables.encode_state[(x >> n) + int(tables.delta[g])])
    out, bits = 0, 0
    for j in range(min(streams, len(symbol))):
        out, bits = (out << tables.table_log) | (state[j] - size), bits + tables.table_log
    for v, n in reversed(emitted):
        out, bits = (out << n) | v, bits + n
    return out, bits


def tans_unpack(tables: TansTables, table, data: int, bits: int, streams: int = STREAMS) -> list[int]:
    """Decode :func:`tans_pack`'s bits, given each member's table; checks that every bit is read
    and that each stream ends in the encoder's start state."""
    size, log = tables.size, tables.table_log
    pos = 0

    def read(n):
        nonlocal pos
        pos += n
        if pos > bits:
            raise ValueError("tANS stream read past its end")
        return (data >> (bits - pos)) & ((1 << n) - 1)

    count = len(table)
    state = [size + read(log) for _ in range(min(streams, count))]
    out = []
    for i in range(count):
        u = int(table[i]) * size + state[i % streams] - size
        out.append(int(tables.decode_symbol[u]))
        x1 = int(tables.decode_next[u])
        n = log + 1 - x1.bit_length()
        state[i % streams] = (x1 << n) | read(n)
    if pos != bits or any(s != size for s in state):
        raise ValueError("tANS stream did not end where it was written")
    return out


# ---- Helpers ----------------------------------------------------------------------------------

_LOG2_FACTORIAL = np.concatenate(([0.0], np.cumsum(np.log2(np.arange(1, (1 << 16) + 2)))))


def log2_binomial(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return _LOG2_FACTORIAL[n] - _LOG2_FACTORIAL[k] - _LOG2_FACTORIAL[n - k]


def hist_entropy(h: np.ndarray) -> float:
    """Empirical entropy of a histogram in bits, summed over its items: the ideal cost of a code
    fitted to it, not counting the code's description."""
    h = np.asarray(h)
    h = h[h > 0]
    return float((h * np.log2(h.sum() / h)).sum()) if len(h) else 0.0


def entropy_sum(keys: np.ndarray) -> float:
    return hist_entropy(np.bincount(keys))


def context_entropy(keys: np.ndarray, context: np.ndarray) -> float:
    """``sum over contexts of n_c * H(keys | context = c)``."""
    total = 0.0
    for c in np.unique(context):
        total += entropy_sum(keys[context == c])
    return total


def huffman_table_bits(lengths: np.ndarray) -> int:
    """Bits of a stored table in today's layout, with a symbol field wide enough for the alphabet."""
    used = int((lengths > 0).sum())
    symbol_bits = max(SYMBOL_BITS, int(len(lengths) - 1).bit_length())
    count_bits = max(COUNT_BITS, int(len(lengths)).bit_length())
    return symbol_bits + LENGTH_BITS + count_bits * max(1, int(lengths.max(initial=0))) + symbol_bits * used


def pad(bits: np.ndarray, word: int) -> np.ndarray:
    return -np.asarray(bits, dtype=np.int64) % word


def bucket_code(z: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A code for ``z >= 0`` around Exp-Golomb of ``order``: the symbol is the EG prefix length
    ``e`` and the mantissa's top bit (``2e + bit``), the rest of the mantissa (``e + order - 1``
    bits) is raw. Returns (symbol, raw bits)."""
    y = z + (1 << order)
    mantissa_bits = bit_length(y) - 1
    e = mantissa_bits - order
    top = np.where(mantissa_bits > 0, (y >> np.maximum(mantissa_bits - 1, 0)) & 1, 0)
    return 2 * e + top, np.maximum(mantissa_bits - 1, 0)


def best_eg_orders(z: np.ndarray, context: np.ndarray, orders: int = 16) -> tuple[np.ndarray, int]:
    """Per context (0..max), the Exp-Golomb order with the fewest bits; (orders, total bits)."""
    best = np.zeros(int(context.max(initial=0)) + 1, dtype=np.int64)
    total = 0
    for c in np.unique(context):
        zc = z[context == c]
        costs = [int(exp_golomb_length(zc, k).sum()) for k in range(orders)]
        best[c] = int(np.argmin(costs))
        total += min(costs)
    return best, total


def huffman_by_context(symbol: np.ndarray, context: np.ndarray, limit: int) -> tuple[int, int]:
    """Code bits and table bits of a length-limited Huffman code per context."""
    code = tables = 0
    for c in np.unique(context):
        h = np.bincount(symbol[context == c])
        lengths = code_lengths(h, limit)
        code += int((h * lengths).sum())
        tables += huffman_table_bits(lengths) + 1        # + the context's present flag
    return code, tables


def histogram_header_entropy(q: np.ndarray, g: Groups) -> dict:
    """An ideal (empirical entropy) header cost when each block's counts are predicted from the
    layer's histogram instead of the previous group's count: the implicit value per block (its
    entropy over the blocks), then for every value of the layer's range but the implicit one its
    count in the block (0: absent, so the value set costs nothing apart), as the zigzag residual
    from ``n_b * p(v)`` rounded, with the context ``bitlen(4 n_b p(v))``; plus the layer
    histogram itself (EG(0) of each count over the value range). An estimate of what a better
    header model could reach, not a code."""
    bits = g.bits
    offset = 1 << (bits - 1)
    hist = np.bincount(q.ravel().astype(np.int64) + offset, minlength=1 << bits)
    B = len(g.block_size)
    counts = np.zeros((B, 1 << bits), dtype=np.int64)
    counts[g.block, g.value + offset] = g.count
    explicit = np.bincount(g.block, weights=g.count, minlength=B).astype(np.int64)
    counts[np.arange(B), g.implicit + offset] = g.block_size - explicit
    present = np.flatnonzero(hist)
    expected = g.block_size[:, None] * (hist[present] / hist.sum())[None, :]
    c = counts[:, present]
    keep = (present[None, :] != (g.implicit + offset)[:, None])
    r = c - np.rint(expected).astype(np.int64)
    z = np.where(r >= 0, 2 * r, -2 * r - 1)[keep]
    context = bit_length(np.floor(4 * expected).astype(np.int64))[keep]
    span = slice(present[0], present[-1] + 1)
    return {"headers_hist_model": context_entropy(z, context) + entropy_sum(g.implicit + offset)
            + int(exp_golomb_length(hist[span], 0).sum())}


def header_tans(g: Groups, value_symbol, value_raw, count_symbol, count_raw, context,
                table_log: int = HEADER_TABLE_LOG):
    """The header section coded with tANS, one state per block: each later group's value delta
    and each group's count as the bucket symbols of :func:`bucket_code` (the value deltas in one
    table, the counts in one table per context), their mantissas raw. Encoded and decoded back.
    Returns (per block bits without the block header and first values, preamble bits)."""
    B, G = len(g.block_size), len(g.count)
    if G == 0:
        return np.zeros(B, dtype=np.int64), 0
    first = g.first_in_block
    later = ~first
    group_in_block = np.arange(G) - np.searchsorted(g.block, np.arange(B))[g.block]
    table = np.concatenate([np.zeros(int(later.sum()), np.int64), 1 + context])
    symbol = np.concatenate([value_symbol[later], count_symbol])
    stream = np.concatenate([g.block[later], g.block])
    step = np.concatenate([2 * group_in_block[later], 2 * group_in_block + 1])
    raw = np.concatenate([value_raw[later], count_raw])
    hists = [np.bincount(symbol[table == t], minlength=1) for t in range(int(table.max()) + 1)]
    counts = [normalize_counts(h, table_log) for h in hists]
    tables = TansTables(counts, table_log)
    nb, value, final = tans_encode(tables, table, symbol, stream, step, B)
    decoded, read, end = tans_decode(tables, table, stream, step, final, value)
    if not (np.array_equal(decoded, symbol) and np.array_equal(read, nb)):
        raise AssertionError("header tANS round trip failed")
    has_groups = np.bincount(g.block, minlength=B) > 0
    per_block = np.bincount(stream, weights=nb + raw, minlength=B).astype(np.int64) + table_log * has_groups
    preamble = sum(8 + (ncount_bits(c, table_log) if c.sum() else 0) for c in counts)
    return per_block, preamble


# ---- One layer --------------------------------------------------------------------------------

@dataclass
class Members:
    """A huffman/free layer's members under one parameter set: table, Rice shift, symbol and raw
    bits of each member, and its place in the v2 block (stream and step)."""

    table: np.ndarray
    k: np.ndarray
    symbol: np.ndarray
    escaped: np.ndarray
    escape_bits: np.ndarray
    alphabet: list[int]
    code_bits: np.ndarray
    block: np.ndarray
    stream: np.ndarray
    step: np.ndarray

    def folded(self, fold: int, distance: np.ndarray):
        """(table, symbol, raw bits, alphabet per table) with the top ``fold`` remainder bits
        coded with the symbol. Members with a Rice shift ``k >= fold`` take the quotient at shift
        ``k - fold`` (today's symbol and the top ``fold`` remainder bits) from a table of their
        own (``table + T``, the decoder knows ``k`` from the group), the others keep today's symbol
        and table; escapes are the same members, as the last symbol of their table."""
        if fold == 0:
            return self.table, self.symbol, np.where(self.escaped, self.escape_bits, self.k), self.alphabet
        T = len(self.alphabet)
        big = self.k >= fold
        escape = (np.asarray(self.alphabet) - 1)[self.table]
        symbol = np.where(big, np.where(self.escaped, escape << fold, distance >> np.maximum(self.k - fold, 0)),
                          self.symbol)
        raw = np.where(self.escaped, self.escape_bits, np.where(big, self.k - fold, self.k))
        return (self.table + T * big, symbol, raw,
                self.alphabet + [((a - 1) << fold) + 1 for a in self.alphabet])


def members_of(g: Groups, params) -> Members:
    group_k, group_escape, group_offset, _, lengths, symbol, escaped = _huffman_codes(g, "free", params)
    _, group_table = rice_context(g.domain_free, g.count, params.rice_bias, len(params.tables))
    table = g.per_member(group_table)
    is_escaped = np.zeros(len(symbol), dtype=bool)
    is_escaped[escaped] = True
    block = g.per_member(g.block)
    first_member = np.searchsorted(block, np.arange(len(g.block_size)))
    index_in_block = np.arange(len(block)) - first_member[block]
    return Members(
        table=table, k=g.per_member(group_k), symbol=symbol.copy(), escaped=is_escaped,
        escape_bits=g.per_member(bit_length(g.domain_free - 1)),
        alphabet=[t.num_symbols for t in params.tables],
        code_bits=lengths[g.per_member(group_offset) + symbol], block=block,
        stream=block * STREAMS + index_in_block % STREAMS, step=index_in_block // STREAMS)


def per_table_hists(table: np.ndarray, symbol: np.ndarray, alphabet: list[int]) -> list[np.ndarray]:
    return [np.bincount(symbol[table == t], minlength=a) for t, a in enumerate(alphabet)]


def stream_bits(m: Members, bits_per_member: np.ndarray, blocks: int) -> np.ndarray:
    """Bits of each member stream of each block (blocks x STREAMS)."""
    return np.bincount(m.stream, weights=bits_per_member, minlength=blocks * STREAMS).astype(np.int64) \
        .reshape(blocks, STREAMS)


def layout_totals(header_bits: np.ndarray, streams: np.ndarray, preamble_bits: int) -> dict:
    """Payload bits of one coder and header code: ``today`` pads each block to a byte (one bit
    stream), ``wN`` pads the header section and each member stream to a word of N bits."""
    blocks = len(header_bits)
    fixed = 8 * ((preamble_bits + 7) // 8) + 8 * BLOCK_OFFSET_BYTES * blocks
    block = header_bits + streams.sum(axis=1)
    out = {"today": fixed + int((block + pad(block, 8)).sum())}
    for w in WORDS:
        out[f"w{w}"] = fixed + int(block.sum() + pad(header_bits, w).sum() + pad(streams, w).sum())
    return out


def fields_per_block(q: np.ndarray, bits: int, block_bits: int) -> tuple[int, int, int, int]:
    """(weights, blocks, groups, members) of ``q`` in blocks of ``2**block_bits``, from per-block
    histograms (no position analysis): a group per distinct value but the most frequent."""
    v = q.ravel().astype(np.int64) + (1 << (bits - 1))
    n, values = 1 << block_bits, 1 << bits
    blocks = groups = members = 0
    chunk = max(1, (1 << 22) // (values + n))
    for start in range(0, len(v), chunk * n):
        part = v[start : start + chunk * n]
        rows = -(-len(part) // n)
        row = np.arange(len(part)) // n
        h = np.bincount(row * values + part, minlength=rows * values).reshape(rows, values)
        blocks += rows
        groups += int((h > 0).sum()) - rows
        members += len(part) - int(h.max(axis=1).sum())
    return len(v), blocks, groups, members


def measure_layer(q: np.ndarray, bits: int, block_bits: int) -> tuple[dict, dict]:
    """Every per-layer measure but tANS; returns (row, state for the tANS pass)."""
    g = analyze(q, bits, block_bits)
    N, B, G = q.size, len(g.block_size), len(g.count)
    row = {"params": N, "H0": entropy_bits(q), "blocks": B, "groups": G, "members": len(g.group)}
    sizes = {}
    for mode, slots in (("repeat", "free"), ("distance", "free"), ("huffman", "all")):
        sizes[f"{mode}/{slots}"] = 8 * payload_size(g, mode, slots, choose_params(g, mode, slots))
    sizes["raw"] = N * bits + pad(N * bits, 8).item()

    # Block and group headers as today.
    params = {L: choose_params(g, "huffman", "free", L) for L in CODE_LIMITS}
    count_k = params[15].count_k
    value_delta, count_z, count_order = _group_header_codes(g, count_k)
    first = g.first_in_block
    m_bits = exp_golomb_length(g.num_values - 1, 0) + bits                 # per block
    value_bits = np.where(first, bits, exp_golomb_length(value_delta, 0))
    count_bits = exp_golomb_length(count_z, count_order)
    context = count_order - count_k                                       # bitlen(previous count) >> 1
    header_today = m_bits + np.bincount(g.block, weights=value_bits + count_bits, minlength=B).astype(np.int64)

    # 1 and 2: today's code and length limits, recounted and checked against payload_size; each
    # limit's per-stream bits for the layouts of measure 5. Members are kept for L = 15 (today's
    # code: breakdown and tANS) and the v2 limit (folding) only.
    distance = g.distances("free")
    limits, members, coders = {}, {}, {}
    for L in CODE_LIMITS:
        p = params[L]
        m = members_of(g, p)
        if L in (15, V2_HUFFMAN_LIMIT):
            members[L] = m
        extra = np.where(m.escaped, m.escape_bits, m.k)
        per_block = header_today + np.bincount(m.block, weights=m.code_bits + extra, minlength=B).astype(np.int64)
        table_bits = sum(SYMBOL_BITS + LENGTH_BITS + COUNT_BITS * t.max_length + SYMBOL_BITS * len(t.symbols)
                         for t in p.tables)
        preamble = COUNT_K_BITS + RICE_BIAS_BITS + TABLES_LOG2_BITS + table_bits
        recount = 8 * ((preamble + 7) // 8) + 8 * BLOCK_OFFSET_BYTES * B + int((per_block + pad(per_block, 8)).sum())
        size = 8 * payload_size(g, "huffman", "free", p)
        limits[L] = {"bits": size, "recount_equal": recount == size, "tables": len(p.tables), "bias": p.rice_bias,
                     "longest": max(t.max_length for t in p.tables),
                     "over_first_level": int((m.code_bits > FIRST_LEVEL_BITS).sum()),
                     "symbols": len(m.code_bits)}
        coders[f"huffman{L}"] = (stream_bits(m, m.code_bits + extra, B), RICE_BIAS_BITS + TABLES_LOG2_BITS + table_bits)
        del m, extra
    sizes["huffman/free"] = limits[15]["bits"]
    row["sizes"], row["limits"] = sizes, limits
    row["best_today"] = min(sizes.values())

    # 3: where the bits go (today's code, L = 15).
    m = members[15]
    p = params[15]
    table_bits_today = sum(SYMBOL_BITS + LENGTH_BITS + COUNT_BITS * t.max_length + SYMBOL_BITS * len(t.symbols)
                           for t in p.tables)
    hists = per_table_hists(m.table, m.symbol, m.alphabet)
    symbol_entropy = sum(hist_entropy(h) for h in hists)
    bd = {
        "ideal_positions": float(log2_binomial(g.domain_free, g.count).sum()),
        "huffman_symbols": int(m.code_bits.sum()),
        "symbol_entropy": symbol_entropy,
        "remainders_raw": int(np.where(m.escaped, 0, m.k).sum()),
        "escape_raw": int(np.where(m.escaped, m.escape_bits, 0).sum()),
        "escapes": int(m.escaped.sum()),
        "block_headers": int(m_bits.sum()),
        "first_values": int(np.where(first, bits, 0).sum()),
        "value_deltas": int(np.where(first, 0, value_bits).sum()),
        "counts": int(count_bits.sum()),
        "tables": table_bits_today + COUNT_K_BITS + RICE_BIAS_BITS + TABLES_LOG2_BITS,
        "offsets": 8 * BLOCK_OFFSET_BYTES * B,
    }
    bd["padding"] = limits[15]["bits"] - sum(bd[k] for k in ("huffman_symbols", "remainders_raw", "escape_raw",
                                                              "block_headers", "first_values", "value_deltas",
                                                              "counts", "offsets")) \
        - 8 * _preamble_bytes("huffman", p)
    bd["preamble_bytes_bits"] = 8 * _preamble_bytes("huffman", p)
    # Remainder bits coded with the symbol: the entropy of the folded symbols plus the raw bits left.
    for fold in (1, 2):
        ft, fs, raw, alphabet = m.folded(fold, distance)
        fh = per_table_hists(ft, fs, alphabet)
        bd[f"fold{fold}_entropy"] = sum(hist_entropy(h) for h in fh)
        bd[f"fold{fold}_raw"] = int(np.where(m.escaped, 0, raw).sum())
    # Counts and values: entropy per context, best EG order per context, bucket Huffman per context.
    z_first = count_z                     # every group, the first of a block with previous count 0
    bd["count_entropy"] = context_entropy(z_first, context)
    bd["count_entropy_gap_context"] = context_entropy(z_first, 2 * context + (value_delta > 0))
    orders, eg_ctx = best_eg_orders(z_first, context)
    bd["count_eg_ctx"] = eg_ctx + 4 * len(orders)
    sym, raw = bucket_code(z_first, orders[context])
    code, tables = huffman_by_context(sym, context, V2_HUFFMAN_LIMIT)
    bd["count_bucket_huffman"] = code + int(raw.sum()) + tables + 4 * len(orders)
    bd["count_bucket_entropy"] = context_entropy(sym, context) + int(raw.sum())
    later = ~first
    bd["value_entropy"] = entropy_sum(value_delta[later])
    vsym, vraw = bucket_code(value_delta, np.zeros_like(value_delta))
    vcode, vtables = huffman_by_context(vsym[later], np.zeros(int(later.sum()), np.int64), V2_HUFFMAN_LIMIT)
    bd["value_bucket_huffman"] = vcode + int(vraw[later].sum()) + vtables
    # Finer table classes (the octave cut in 8 or 16 instead of the searched T): the symbols'
    # entropy only, same Rice shifts and escapes.
    for classes in (8, 16):
        _, fine = rice_context(g.domain_free, g.count, p.rice_bias, classes)
        bd[f"symbol_entropy_T{classes}"] = sum(hist_entropy(h) for h in per_table_hists(
            g.per_member(fine), m.symbol, [max(m.alphabet)] * classes))
    bd.update(histogram_header_entropy(q, g))
    row["breakdown"] = bd

    # Header codes of the v2 candidates: per block header-section bits and preamble bits.
    count_ctx_bits = exp_golomb_length(count_z, orders[context])
    count_bucket_bits = np.zeros(G, dtype=np.int64)
    for c in np.unique(context):
        sel = context == c
        h = np.bincount(sym[sel])
        count_bucket_bits[sel] = code_lengths(h, V2_HUFFMAN_LIMIT)[sym[sel]]
    count_bucket_bits += raw
    value_bucket_bits = np.where(first, bits, 0)
    if later.any():
        vh = np.bincount(vsym[later])
        value_bucket_bits[later] = code_lengths(vh, V2_HUFFMAN_LIMIT)[vsym[later]] + vraw[later]
    headers = {
        "today": (header_today, COUNT_K_BITS),
        "eg_ctx": (m_bits + np.bincount(g.block, weights=value_bits + count_ctx_bits, minlength=B).astype(np.int64),
                   4 * len(orders)),
        "bucket": (m_bits + np.bincount(g.block, weights=value_bucket_bits + count_bucket_bits,
                                        minlength=B).astype(np.int64), tables + 4 * len(orders) + vtables),
    }
    tans_blocks, tans_preamble = header_tans(g, vsym, vraw, sym, raw, context)
    headers["tans"] = (m_bits + np.bincount(g.block, weights=np.where(first, bits, 0), minlength=B).astype(np.int64)
                       + tans_blocks, tans_preamble + 4 * len(orders))
    bd["headers_tans"] = int(headers["tans"][0].sum()) + headers["tans"][1]

    mm = members[V2_HUFFMAN_LIMIT]
    for fold in (1,):
        ft, s, raw_f, alphabet = mm.folded(fold, distance)
        fh = per_table_hists(ft, s, alphabet)
        lens = [code_lengths(h, V2_HUFFMAN_LIMIT) for h in fh]
        flat = np.concatenate(lens)
        base = np.cumsum([0] + [len(x) for x in lens])[:-1]
        cb = flat[base[ft] + s]
        tb = RICE_BIAS_BITS + TABLES_LOG2_BITS + sum(huffman_table_bits(x) for x in lens)
        coders[f"huffman{V2_HUFFMAN_LIMIT}_fold{fold}"] = (stream_bits(mm, cb + raw_f, B), tb)
        row.setdefault("fold_huffman", {})[str(fold)] = {
            "symbols": int(cb.sum()), "raw": int(np.where(mm.escaped, 0, raw_f).sum()),
            "tables": tb, "over_first_level": int((cb > FIRST_LEVEL_BITS).sum())}
    state = {"members": m, "distance": distance, "blocks": B, "headers": headers, "coders": coders}
    return row, state


def finish_layer(row: dict, state: dict) -> None:
    """Totals of every (coder, header code, layout) once the tANS coders are in ``state``."""
    totals = {}
    for coder, (streams, table_bits) in state["coders"].items():
        for header, (header_bits, header_preamble) in state["headers"].items():
            preamble = table_bits + header_preamble
            for layout, bits in layout_totals(header_bits, streams, preamble).items():
                totals[f"{coder}|{header}|{layout}"] = bits
    # The encoder may pick the header code per layer (a 2-bit field in the preamble).
    for coder in state["coders"]:
        for layout in ["today"] + [f"w{w}" for w in WORDS]:
            totals[f"{coder}|pick|{layout}"] = 2 + min(totals[f"{coder}|{h}|{layout}"] for h in state["headers"])
    row["totals"] = totals
    assert totals["huffman15|today|today"] == row["sizes"]["huffman/free"], "layout recount differs"


def tans_pass(layers: list[tuple[dict, dict]], table_log: int, fold: int, verify: bool) -> None:
    """tANS for the members of several layers at once (their streams side by side): per layer
    the coder's stream bits go into its state, and the measures into its row."""
    all_tables, tab, sym, stream, step, extras = [], [], [], [], [], []
    table_base = stream_base = 0
    per_layer = []
    for row, state in layers:
        m = state["members"]
        ft, s, raw, alphabet = m.folded(fold, state["distance"])
        hists = per_table_hists(ft, s, alphabet)
        counts = [normalize_counts(h, table_log) for h in hists]
        all_tables += counts
        tab.append(ft + table_base)
        sym.append(s)
        stream.append(m.stream + stream_base)
        step.append(m.step)
        extras.append(raw)
        per_layer.append((hists, counts, table_base, stream_base, len(counts)))
        table_base += len(counts)
        stream_base += state["blocks"] * STREAMS
    tables = TansTables(all_tables, table_log)
    tab, sym, stream, step = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (tab, sym, stream, step))
    nb, value, final = tans_encode(tables, tab, sym, stream, step, stream_base)
    ok = True
    if verify:
        dsym, dnb, end = tans_decode(tables, tab, stream, step, final, value)
        used = np.bincount(stream, minlength=stream_base) > 0
        ok = bool(np.array_equal(dsym, sym) and np.array_equal(dnb, nb) and np.all(end[used] == tables.size))
        if not ok:
            raise AssertionError(f"tANS round trip failed (table log {table_log}, fold {fold})")
    start = 0
    for (row, state), (hists, counts, tb, sb, nt), raw in zip(layers, per_layer, extras):
        m = state["members"]
        E, B = len(m.stream), state["blocks"]
        layer_nb = nb[start : start + E]
        start += E
        streams = stream_bits(m, layer_nb + raw, B)
        used = np.bincount(m.stream, minlength=B * STREAMS).reshape(B, STREAMS) > 0
        streams += table_log * used
        table_bits = RICE_BIAS_BITS + TABLES_LOG2_BITS + sum(
            8 + (ncount_bits(c, table_log) if c.sum() else 0) for c in counts)
        name = f"tans{table_log}" + (f"_fold{fold}" if fold else "")
        state["coders"][name] = (streams, table_bits)
        row.setdefault("tans", {})[name] = {
            "symbols": int(layer_nb.sum()), "expected": normalized_cost(hists, counts, table_log),
            "states": int(table_log * used.sum()),
            "raw": int(np.where(m.escaped, 0, raw).sum()), "tables": table_bits, "verified": ok and verify}


# ---- Container directory ------------------------------------------------------------------------

def varint(x: int) -> bytes:
    """LEB128: 7 bits a byte, low first, the top bit set on all but the last."""
    out = bytearray()
    while True:
        out.append((x & 0x7F) | (0x80 if x >> 7 else 0))
        x >>= 7
        if not x:
            return bytes(out)


def varint_bytes(x: int) -> int:
    return len(varint(int(x)))


def directory_costs(tensors: dict, payload_bytes: dict, granularity: str) -> dict:
    """Bytes of today's layer table and of compact directories, for every tensor of the model as
    ``compress`` stores it (1-D tensors float32, the rest quantized with ``granularity`` scales).

    Compact: a name as the length of the prefix it shares with the previous name and the rest
    (varints); ndim and dims as varints; one byte of mode/bits/granularity/slots and one of block
    bits; the payload length as a varint (offsets are running sums). Variants: with a CRC-32 per
    tensor or one for the directory; names deflated (zlib -9 of the front-coded names); no names.
    Scales are counted apart (a scale section of float32, 4 bytes each)."""
    today_records = today_no_scales = 0
    names, shapes, other, crc, scales = [], 0, 0, 0, 0
    previous = b""
    for name, x in tensors.items():
        shape = tuple(int(d) for d in np.shape(x))
        quantized = len(shape) >= 2
        gran = granularity if quantized else "none"
        num_scales = (shape[0] if granularity == "channel" else 1) if quantized else 0
        record = LayerRecord(name, shape, "huffman" if quantized else "float32", 8 if quantized else 32, gran,
                             "free" if quantized else "all", 14 if quantized else 0,
                             np.zeros(num_scales, np.float32))
        size = len(record.pack())
        today_records += size
        today_no_scales += size - 4 * num_scales
        scales += 4 * num_scales
        encoded = name.encode()
        shared = 0
        while shared < min(len(encoded), len(previous)) and encoded[shared] == previous[shared]:
            shared += 1
        names.append(varint(shared) + varint(len(encoded) - shared) + encoded[shared:])
        previous = encoded
        shapes += 1 + sum(varint_bytes(d) for d in shape)
        other += 2 + varint_bytes(payload_bytes.get(name, 4 * int(np.prod(shape, dtype=np.int64))))
        crc += 4
    front = b"".join(names)
    fixed = HEADER.size + 4
    out = {"tensors": len(tensors), "weights": int(sum(np.size(x) for x in tensors.values())),
           "weights_2d": int(sum(np.size(x) for x in tensors.values() if np.ndim(x) >= 2)),
           "today": fixed + today_records, "today_without_scales": fixed + today_no_scales, "scales": scales,
           "names_raw": sum(len(n.encode()) + 2 for n in tensors), "names_front": len(front),
           "names_deflated": len(zlib.compress(front, 9))}
    out["compact_crc_per_tensor"] = fixed + len(front) + shapes + other + crc
    out["compact"] = fixed + len(front) + shapes + other
    out["compact_deflated_names"] = fixed + out["names_deflated"] + shapes + other
    out["compact_no_names"] = fixed + shapes + other
    return out


# ---- The run -----------------------------------------------------------------------------------

def run_setting(tensors: dict, bits: int, granularity: str, block_bits: int, verify: bool, batch: int) -> dict:
    names = [n for n, x in tensors.items() if np.ndim(x) >= 2]
    rows, pending, pending_members = [], [], 0

    def flush():
        nonlocal pending, pending_members
        if pending:
            for table_log, fold in TANS_RUNS:
                tans_pass(pending, table_log, fold, verify)
            for row, state in pending:
                finish_layer(row, state)
        pending, pending_members = [], 0

    for name in names:
        q, _ = quantize(tensors[name], bits, granularity)
        row, state = measure_layer(q, bits, block_bits)
        row["name"] = name
        rows.append(row)
        pending.append((row, state))
        pending_members += row["members"]
        if pending_members >= batch:
            flush()
    flush()
    return {"layers": rows}


def throughput(tensors: dict, bits: int, granularity: str) -> dict:
    out = {}
    for P in THROUGHPUT_BLOCK_BITS:
        N = B = G = E = 0
        for x in tensors.values():
            if np.ndim(x) >= 2:
                q, _ = quantize(x, bits, granularity)
                n, b, g, e = fields_per_block(q, bits, P)
                N, B, G, E = N + n, B + b, G + g, E + e
        out[str(P)] = {"weights": N, "blocks": B, "groups": G, "members": E,
                       "fields_per_weight": (2 * B + 2 * G + E) / N, "members_per_weight": E / N,
                       "header_fields_per_weight": (2 * B + 2 * G) / N,
                       "ceiling_today": N / (2 * B + 2 * G + E),
                       "ceiling_member_path": N / E if E else float("inf"),
                       "ceiling_header_unit": N / (2 * B + 2 * G),
                       "ceiling_header_unit_group_per_cycle": N / (B + G) if B + G else float("inf")}
    return out


def summarize(rows: list[dict]) -> dict:
    """Bits/weight over the layers of one model, setting and block size."""
    N = sum(r["params"] for r in rows)
    s = {"params": N, "layers": len(rows), "H0": sum(r["H0"] * r["params"] for r in rows) / N,
         "best_today": sum(r["best_today"] for r in rows) / N}
    for key in rows[0]["sizes"]:
        s[key] = sum(r["sizes"][key] for r in rows) / N
    s["recount_equal"] = all(r["limits"][L]["recount_equal"] for r in rows for L in CODE_LIMITS)
    s["limits"] = {str(L): {"bits_per_weight": sum(r["limits"][L]["bits"] for r in rows) / N,
                            "over_first_level_share": sum(r["limits"][L]["over_first_level"] for r in rows)
                            / max(1, sum(r["limits"][L]["symbols"] for r in rows)),
                            "longest": max(r["limits"][L]["longest"] for r in rows)} for L in CODE_LIMITS}
    s["breakdown"] = {k: sum(r["breakdown"][k] for r in rows) / N for k in rows[0]["breakdown"]}
    s["fold_huffman"] = {f: {k: sum(r["fold_huffman"][f][k] for r in rows) / N for k in rows[0]["fold_huffman"][f]}
                         for f in rows[0]["fold_huffman"]}
    s["fold_huffman_over_first_level_share"] = {
        f: sum(r["fold_huffman"][f]["over_first_level"] for r in rows) / max(1, sum(r["members"] for r in rows))
        for f in rows[0]["fold_huffman"]}
    s["tans"] = {name: {k: sum(r["tans"][name][k] for r in rows) / N for k in ("symbols", "expected", "states", "raw",
                                                                                 "tables")}
                 for name in rows[0]["tans"]}
    for name in s["tans"]:
        s["tans"][name]["verified_layers"] = sum(bool(r["tans"][name]["verified"]) for r in rows)
    s["totals"] = {k: sum(r["totals"][k] for r in rows) / N for k in rows[0]["totals"]}
    s["bias_share"] = {str(b): sum(r["params"] for r in rows if r["limits"][15]["bias"] == b) / N for b in range(4)}
    s["tables_share"] = {str(t): sum(r["params"] for r in rows if r["limits"][15]["tables"] == t) / N
                         for t in (1, 2, 4)}
    # Each layer's distance from H0 (bits/weight), over all layers and over layers of 2^16 weights or more.
    s["gap_to_H0"] = {}
    for label, sel in (("all", rows), ("large", [r for r in rows if r["params"] >= 1 << 16])):
        if not sel:
            continue
        gaps = {"huffman/free": [r["sizes"]["huffman/free"] / r["params"] - r["H0"] for r in sel]}
        for k in rows[0]["totals"]:
            gaps[k] = [r["totals"][k] / r["params"] - r["H0"] for r in sel]
        s["gap_to_H0"][label] = {"layers": len(sel), **{k: [min(v), max(v)] for k, v in gaps.items()}}
    # Per layer: the v2 totals' distance from H0 and from today, with each layer's other modes.
    s["best_v2"] = {}
    others = ("raw", "repeat/free", "distance/free")
    for k in rows[0]["totals"]:
        s["best_v2"][k] = sum(min([r["totals"][k]] + [r["sizes"][o] for o in others]) for r in rows) / N
    return s


# ---- Printing -------------------------------------------------------------------------------------

def table(title: str, head: list[str], lines: list[list]) -> str:
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    rows = [[cell(v) for v in line] for line in lines]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    out = [f"\n## {title}", "  ".join(h.rjust(w) for h, w in zip(head, widths))]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def print_report(result: dict) -> None:
    runs = result["runs"]

    def label(r):
        return f"{r['model']} {r['bits']}{r['granularity'][:2]} P{r['block_bits']}"

    print(table("1-2. huffman/free today (bits/weight; recount == payload_size) and code length limits",
                ["run", "today", "recount ok", "best", "L12", "L11", "L10", "L9", ">8 bits L15", ">8 L11", "zstd-19"],
                [[label(r), s["huffman/free"], s["recount_equal"], s["best_today"]]
                 + [s["limits"][str(L)]["bits_per_weight"] - s["huffman/free"] for L in (12, 11, 10, 9)]
                 + [s["limits"]["15"]["over_first_level_share"], s["limits"]["11"]["over_first_level_share"],
                    r.get("zstd-19", "-")] for r in runs for s in [r["summary"]]]))
    print(table("3. breakdown (bits/weight): symbols vs entropy, remainders, headers",
                ["run", "H0", "ideal pos", "huff sym", "sym H", "rem raw", "fold1 save", "fold2 save", "counts",
                 "count H", "cnt eg-ctx", "cnt bucket", "values", "value H", "val bucket", "blk hdr", "pad"],
                [[label(r), s["H0"], b["ideal_positions"], b["huffman_symbols"], b["symbol_entropy"],
                  b["remainders_raw"],
                  b["symbol_entropy"] + b["remainders_raw"] - b["fold1_entropy"] - b["fold1_raw"],
                  b["symbol_entropy"] + b["remainders_raw"] - b["fold2_entropy"] - b["fold2_raw"],
                  b["counts"], b["count_entropy"], b["count_eg_ctx"], b["count_bucket_huffman"],
                  b["value_deltas"], b["value_entropy"], b["value_bucket_huffman"],
                  b["block_headers"] + b["first_values"], b["padding"]]
                 for r in runs for s in [r["summary"]] for b in [s["breakdown"]]]))
    names = list(runs[0]["summary"]["tans"])
    print(table("4. tANS vs Huffman (member symbol bits + states + tables - Huffman's symbols + tables, bits/weight)",
                ["run", "huff sym", "sym H"] + names + ["verified"],
                [[label(r), s["breakdown"]["huffman_symbols"], s["breakdown"]["symbol_entropy"]]
                 + [s["totals"][f"{n}|today|today"] - s["totals"]["huffman15|today|today"] for n in names]
                 + [min(s["tans"][n]["verified_layers"] for n in names) == s["layers"]]
                 for r in runs for s in [r["summary"]]]))
    coders = ["huffman15", "huffman11", "tans10", "tans11"]
    print(table("5. interleaving: padding of a header section + 4 streams at word W, minus today's byte padding",
                ["run"] + [f"{c} W{w}" for c in coders for w in WORDS],
                [[label(r)] + [s["totals"][f"{c}|today|w{w}"] - s["totals"][f"{c}|today|today"]
                               for c in coders for w in WORDS] for r in runs for s in [r["summary"]]]))
    print(table("6. throughput ceilings (weights/cycle, one field a cycle)",
                ["model setting", "P", "fields/w", "today", "members/w", "member path", "header unit",
                 "header unit (group/cycle)"],
                [[f"{t['model']} {t['bits']}{t['granularity'][:2]}", P, v["fields_per_weight"], v["ceiling_today"],
                  v["members_per_weight"], v["ceiling_member_path"], v["ceiling_header_unit"],
                  v["ceiling_header_unit_group_per_cycle"]]
                 for t in result["throughput"] for P, v in t["ceilings"].items()]))
    print(table("7. container directory (bytes per tensor; bits per weight over all the model's weights)",
                ["model", "tensors", "mean size", "today B/t", "today b/w", "no scales B/t", "compact B/t",
                 "compact b/w", "+CRC b/w", "deflated names b/w", "no names b/w", "scales b/w"],
                [[d["model"], d["tensors"], d["weights"] / d["tensors"], d["today"] / d["tensors"],
                  8 * d["today"] / d["weights"], d["today_without_scales"] / d["tensors"],
                  d["compact"] / d["tensors"], 8 * d["compact"] / d["weights"],
                  8 * d["compact_crc_per_tensor"] / d["weights"], 8 * d["compact_deflated_names"] / d["weights"],
                  8 * d["compact_no_names"] / d["weights"], 8 * d["scales"] / d["weights"]]
                 for d in result["directory"]]))
    print(table("3b. modelling headroom (bits/weight, empirical entropies; no code or table cost)",
                ["run", "ideal pos", "sym H + rem", "sym H (T)", "sym H T8", "sym H T16", "fold1 save", "headers",
                 "today's model H", "hist model H", "hdr tANS"],
                [[label(r), b["ideal_positions"], b["symbol_entropy"] + b["remainders_raw"], b["symbol_entropy"],
                  b["symbol_entropy_T8"], b["symbol_entropy_T16"],
                  b["symbol_entropy"] + b["remainders_raw"] - b["fold1_entropy"] - b["fold1_raw"],
                  b["counts"] + b["value_deltas"] + b["first_values"] + b["block_headers"],
                  b["count_entropy"] + b["value_entropy"] + b["first_values"] + b["block_headers"],
                  b["headers_hist_model"], b["headers_tans"]]
                 for r in runs for s in [r["summary"]] for b in [s["breakdown"]]]))
    cands = result["candidates"]
    print(table("v2 candidates (bits/weight, best of the candidate and today's raw/repeat/distance per layer)",
                ["run", "best today"] + list(cands), [[label(r), r["summary"]["best_today"]]
                                                      + [r["summary"]["best_v2"][c] for c in cands.values()]
                                                      for r in runs]))
    bench = {(r["model"], r["bits"], r["granularity"]): r["summary"]["best_today"] for r in runs
             if r["block_bits"] == 14}
    lines = []
    for r in runs:
        row = bench.get((r["model"], r["bits"], r["granularity"]), float("nan"))
        v2 = r["summary"]["best_v2"][RECOMMENDED]
        zstd = r.get("zstd-19")
        lines.append([label(r), row, zstd or "-", v2, v2 - row, v2 - row <= 0.03, bool(zstd) and v2 < zstd])
    print(table(f"targets: {RECOMMENDED} against the make bench row (today's best at 2^14) and zstd -19",
                ["run", "bench row", "zstd-19", "candidate", "- bench row", "<= +0.03", "beats zstd"], lines))


CANDIDATES = {
    "huff11 hdr-today W16": "huffman11|today|w16",
    "huff11 eg-ctx W16": "huffman11|eg_ctx|w16",
    "tans10 bucket W16": "tans10|bucket|w16",
    "tans11 hdr-today W16": "tans11|today|w16",
    "tans11 bucket W16": "tans11|bucket|w16",
    "huff11 hdr-tans W16": "huffman11|tans|w16",
    "tans11 hdr-tans W16": "tans11|tans|w16",
    "tans11 hdr-tans W32": "tans11|tans|w32",
    "huff11 hdr-pick W16": "huffman11|pick|w16",
    "tans11 hdr-pick W16": "tans11|pick|w16",
    "tans11 hdr-pick W32": "tans11|pick|w32",
    "tans11 fold1 bucket W16": "tans11_fold1|bucket|w16",
}
#: The candidate the targets table checks.
RECOMMENDED = "tans11|pick|w16"


def zstd_figures(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {(r["model"], r["settings"]["bits"], r["settings"]["granularity"]): r["total"] for r in data["runs"]}


# ---- Self test -------------------------------------------------------------------------------------

def selftest() -> None:
    rng = np.random.default_rng(1)
    for table_log in (9, 10, 11):
        for alphabet in (1, 2, 5, 64, 200):
            hist = rng.geometric(0.2, 5000) % alphabet
            h = np.bincount(hist, minlength=alphabet + 3)
            n = normalize_counts(h, table_log)
            assert n.sum() == 1 << table_log and np.all((n > 0) == (h > 0))
            counts, log = read_ncount(write_ncount(n, table_log), len(n))
            assert counts == list(n) and log == table_log
    # Random tables and symbol sequences: the scalar coder round-trips, the vectorized one agrees.
    for trial in range(40):
        table_log = int(rng.integers(9, 12))
        tables = []
        for _ in range(int(rng.integers(1, 4))):
            alphabet = int(rng.integers(1, 80))
            tables.append(normalize_counts(rng.zipf(1.5, alphabet) * (rng.random(alphabet) < 0.8), table_log))
        tables = [t if t.sum() else normalize_counts(np.ones(3), table_log) for t in tables]
        coder = TansTables(tables, table_log)
        blocks = int(rng.integers(1, 4))
        tab_all, sym_all, stream_all, step_all = [], [], [], []
        packed = []
        for b in range(blocks):
            count = int(rng.integers(0, 60))
            tab = rng.integers(0, len(tables), count)
            sym = np.array([rng.choice(np.flatnonzero(tables[t])) for t in tab], dtype=np.int64)
            data, nbits = tans_pack(coder, tab, sym)
            assert tans_unpack(coder, tab, data, nbits) == list(sym)
            packed.append(nbits)
            i = np.arange(count)
            tab_all.append(tab)
            sym_all.append(sym)
            stream_all.append(b * STREAMS + i % STREAMS)
            step_all.append(i // STREAMS)
        tab, sym, stream, step = (np.concatenate(x).astype(np.int64) for x in (tab_all, sym_all, stream_all, step_all))
        nb, value, final = tans_encode(coder, tab, sym, stream, step, blocks * STREAMS)
        dsym, dnb, end = tans_decode(coder, tab, stream, step, final, value)
        assert np.array_equal(dsym, sym) and np.array_equal(dnb, nb)
        used = np.bincount(stream, minlength=blocks * STREAMS) > 0
        assert np.all(end[used] == coder.size)
        per_block = np.bincount(stream // STREAMS, weights=nb, minlength=blocks) \
            + table_log * used.reshape(blocks, STREAMS).sum(axis=1)
        assert per_block.astype(int).tolist() == packed
    # A skewed source costs about its entropy.
    h = np.bincount(rng.geometric(0.3, 200000) - 1)
    coder = TansTables([normalize_counts(h, 11)], 11)
    s = rng.choice(len(h), 200000, p=h / h.sum())
    nb, _, _ = tans_encode(coder, np.zeros(len(s), np.int64), s, np.arange(len(s)) % 4, np.arange(len(s)) // 4, 4)
    hs = np.bincount(s, minlength=len(h))
    assert nb.sum() < 1.005 * entropy_sum(s) + 100, (nb.sum(), entropy_sum(s))
    assert abs(nb.sum() - normalized_cost([hs], coder.counts, 11)) < 0.002 * nb.sum() + 64
    print("selftest passed")


# ---- Main --------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(BUNDLED), choices=list(BUNDLED))
    ap.add_argument("--block-bits", nargs="*", type=int, default=[12, 14])
    ap.add_argument("--out", default="results/format_v2_study.json")
    ap.add_argument("--zstd-json", default="/work/newfig/codec.json",
                    help="a make bench results file for the zstd -19 figures")
    ap.add_argument("--no-verify", action="store_true", help="skip the tANS decode check")
    ap.add_argument("--batch", type=int, default=4_000_000, help="members coded together in one tANS pass")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--report", metavar="JSON", help="print the tables of a results file instead of measuring")
    args = ap.parse_args(argv)
    if args.selftest:
        selftest()
        return 0
    if args.report:
        result = json.loads(Path(args.report).read_text())
        result["candidates"] = CANDIDATES
        print_report(result)
        return 0
    t0 = time.time()
    zstd = zstd_figures(Path(args.zstd_json))
    result = {"machine": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M"), "runs": [],
              "throughput": [], "directory": [], "candidates": CANDIDATES}
    for model in args.models:
        tensors = load_model(bundled_model(model))
        payload_bytes = {}
        for s in SETTINGS:
            for P in args.block_bits:
                t1 = time.time()
                run = run_setting(tensors, s["bits"], s["granularity"], P, not args.no_verify, args.batch)
                summary = summarize(run["layers"])
                z = zstd.get((model, s["bits"], s["granularity"]), {})
                result["runs"].append({"model": model, **s, "block_bits": P, "summary": summary,
                                       "zstd-19": z.get("zstd-19"), "bench_huffman_free": z.get("huffman/free"),
                                       "bench_best": z.get("best"), "seconds": time.time() - t1,
                                       "layers": run["layers"]})
                if s["granularity"] == "tensor" and s["bits"] == 8 and P == max(args.block_bits):
                    payload_bytes = {r["name"]: r["best_today"] // 8 for r in run["layers"]}
                print(f"{model} {s['bits']} {s['granularity']} P={P}: huffman/free {summary['huffman/free']:.4f} "
                      f"({time.time() - t1:.1f} s)", flush=True)
            result["throughput"].append({"model": model, **s, "ceilings": throughput(tensors, s["bits"],
                                                                                     s["granularity"])})
        for gran in ("tensor", "channel"):
            result["directory"].append({"model": model, "granularity": gran,
                                        **directory_costs(tensors, payload_bytes, gran)})
    result["seconds"] = time.time() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    print_report(result)
    print(f"\nwrote {args.out} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
