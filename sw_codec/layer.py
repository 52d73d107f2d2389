"""One layer's payload: the position-based modes (repeat, distance, huffman) and raw.

The flattened layer is cut into blocks of ``2**block_bits`` weights (the last may be shorter). In
each block the most frequent value is *implicit*: it is stored once and fills every slot no other
value claims. Every other distinct value is a *group*: the value, its count and its positions,
in increasing value order. ``docs/FORMAT.md`` gives the bit layout; this module is its executable
form: a vectorized encoder and a decoder composed of the three hardware stages.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import math

import numpy as np

from .bits import BitReader, BitWriter, bit_length, exp_golomb_fields, exp_golomb_length, \
    place_fields
from .distance import SLOTS, DistanceAccumulator
from .errors import FormatError
from .huffman import (
    COUNT_BITS,
    LENGTH_BITS,
    MAX_CODE_LENGTH,
    MAX_SYMBOLS,
    SYMBOL_BITS,
    CanonicalHuffmanDecoder,
    HuffmanTable,
    code_lengths,
    rice_context,
)
from .repeat import RepeatExpander

MODES = ("raw", "repeat", "distance", "huffman")
POSITION_MODES = ("repeat", "distance", "huffman")
BITS = (4, 8, 16)
MIN_BLOCK_BITS, MAX_BLOCK_BITS = 4, 16
COUNT_K_BITS = 4
RICE_BIAS_BITS = 4
TABLES_LOG2_BITS = 2
DISTANCE_WIDTH_BITS = 5
BLOCK_OFFSET_BYTES = 4
#: Rice biases and table counts the encoder tries (any bias 0..15 and 1, 2, 4 or 8 tables decode).
RICE_BIASES = range(0, 4)
TABLE_COUNTS = (1, 2, 4)


def check_params(bits: int, block_bits: int) -> None:
    if bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}, not {bits}")
    if not MIN_BLOCK_BITS <= block_bits <= MAX_BLOCK_BITS:
        raise ValueError(f"block_bits must be in {MIN_BLOCK_BITS}..{MAX_BLOCK_BITS}, not {block_bits}")


@dataclass
class Groups:
    """A layer's blocks as groups and positions, shared by every position mode.

    Per block: ``block_size``, ``num_values`` (distinct values), ``implicit``. Per group, in stream
    order: ``block``, ``value``, ``count``, ``domain_all``, ``domain_free``, ``first_in_block``.
    Per group member (explicit weight), in stream order: ``group``, ``index_all`` (its position),
    ``index_free`` (its index among the slots earlier groups left free).
    """

    bits: int
    block_bits: int
    block_size: np.ndarray
    num_values: np.ndarray
    implicit: np.ndarray
    block: np.ndarray
    value: np.ndarray
    count: np.ndarray
    domain_all: np.ndarray
    domain_free: np.ndarray
    first_in_block: np.ndarray
    group: np.ndarray
    index_all: np.ndarray
    index_free: np.ndarray

    def per_member(self, per_group: np.ndarray) -> np.ndarray:
        """Per member: the value of its group, ``per_group[self.group]`` (a faster repeat)."""
        return np.repeat(per_group, self.count)

    def domain(self, slots: str) -> np.ndarray:
        return self.domain_all if slots == "all" else self.domain_free

    def index(self, slots: str) -> np.ndarray:
        return self.index_all if slots == "all" else self.index_free

    def distances(self, slots: str) -> np.ndarray:
        """Per member (int64): index minus the previous member's index minus one (first: the index)."""
        cache = self.__dict__.setdefault("_distance_cache", {})
        if slots not in cache:
            cache[slots] = self._distances(slots)
        return cache[slots]

    def max_distance(self, slots: str) -> np.ndarray:
        """Per group: its largest distance."""
        cache = self.__dict__.setdefault("_max_distance_cache", {})
        if slots not in cache:
            d = self.distances(slots)
            starts = np.cumsum(self.count) - self.count
            cache[slots] = np.maximum.reduceat(d, starts) if len(d) else np.zeros(0, np.int64)
        return cache[slots]

    def _distances(self, slots: str) -> np.ndarray:
        index = self.index(slots)
        d = np.empty(len(index), dtype=np.int64)
        np.subtract(index[1:], index[:-1], out=d[1:])
        d -= 1
        first = np.cumsum(self.count) - self.count      # each group's first member
        d[first] = index[first]
        return d


#: ``_smaller_before`` counts, for a base-4 digit, the earlier slots holding a digit of at most 0,
#: at most 1 and at most 2 in one int64, a field of this many bits each (a block has at most 2**16
#: slots): field f counts the digits <= f.
_DIGIT_COUNT_BITS = 21
#: Per digit: a one in each field it counts in ...
_DIGIT_AT_MOST = np.array([sum(1 << (_DIGIT_COUNT_BITS * f) for f in range(3) if d <= f) for d in range(4)],
                          dtype=np.int64)
#: ... and where a digit finds the count of smaller digits (field d - 1; none for digit 0).
_SMALLER_FIELD_SHIFT = np.array([0, 0, _DIGIT_COUNT_BITS, 2 * _DIGIT_COUNT_BITS], dtype=np.int64)
_SMALLER_FIELD_MASK = np.array([0] + [(1 << _DIGIT_COUNT_BITS) - 1] * 3, dtype=np.int64)


def _smaller_before(values: np.ndarray, bits: int) -> np.ndarray:
    """For each slot of each row of ``values`` (R x L, below ``2**(bits+1)``), how many earlier
    slots of its row hold a smaller value.

    A wavelet-tree style rank in base 4, vectorized over rows: for each pair of value bits (from
    the low end), the slots are put in stable order of the value bits above the pair, and a slot
    counts the earlier slots with the same higher bits and a smaller pair digit. The counts of
    digits up to 0, 1 and 2 run in three fields of one int64 cumulative sum.
    """
    R, L = values.shape
    smaller_before = np.zeros(R * L, dtype=np.int64)
    row_base = (np.arange(R, dtype=np.int64) * L)[:, None]
    flat = values.ravel()
    for shift in range(0, bits, 2):
        higher = values >> (shift + 2)
        if bits - shift <= 8:
            higher = higher.astype(np.uint8)     # a one-pass radix sort
        order = np.argsort(higher, axis=1, kind="stable")
        order += row_base                        # flat indices: one gather and one scatter
        in_order = flat[order]
        digit = ((in_order >> shift) & 3).astype(np.intp)
        higher_in_order = in_order >> (shift + 2)
        new_bucket = np.empty((R, L), dtype=bool)
        new_bucket[:, 0] = True
        np.not_equal(higher_in_order[:, 1:], higher_in_order[:, :-1], out=new_bucket[:, 1:])
        at_most = _DIGIT_AT_MOST[digit]
        before = np.cumsum(at_most, axis=1)
        before -= at_most                        # digit counts of the earlier slots in the row ...
        before -= np.maximum.accumulate(np.where(new_bucket, before, 0), axis=1)  # ... in the bucket
        before >>= _SMALLER_FIELD_SHIFT[digit]
        before &= _SMALLER_FIELD_MASK[digit]
        smaller_before[order.ravel()] += before.ravel()
    return smaller_before.reshape(R, L)


#: Values of at most this many bits get their free-slot indices from per-group bitmaps
#: (:func:`_free_indices_by_bitmap`, at most 2**bits + 1 groups a block); wider values from
#: :func:`_smaller_before`.
_FREE_BITMAP_MAX_BITS = 8
#: Bitmap words a chunk of blocks may use (512 KB of uint64): the table of a chunk and the
#: per-slot arrays of its blocks stay in cache, and one table buffer serves every chunk.
_FREE_BITMAP_WORDS = 1 << 16
#: Table rows of at least this many words are OR-accumulated by doubling (numpy's accumulate
#: along the table is slow on long rows; the doubling's whole-table passes cost more on short ones).
_DOUBLING_WORDS = 256


def _explicit_runs_before_row(run_row: np.ndarray, explicit_run: np.ndarray, R: int) -> np.ndarray:
    """Per run: how many explicit runs the rows before its row hold."""
    explicit_per_row = np.bincount(run_row[explicit_run], minlength=R)
    return (np.cumsum(explicit_per_row) - explicit_per_row)[run_row]


def _or_accumulate_rows(table: np.ndarray, spare: np.ndarray) -> np.ndarray:
    """Row ``i`` of the result is the OR of rows ``0..i`` of the 2-D uint64 ``table``.

    Short rows: numpy's accumulate, in place (``table`` is returned). Long rows: by doubling
    (after the pass of step ``s``, each row holds the OR of up to ``2 s`` rows ending at it), a
    few whole-table passes instead of one numpy call per row; the passes alternate between
    ``table`` and ``spare`` (same shape), and the one holding the result is returned.
    """
    rows, row_words = table.shape
    if row_words < _DOUBLING_WORDS:
        np.bitwise_or.accumulate(table, axis=0, out=table)
        return table
    step = 1
    while step < rows:
        spare[:step] = table[:step]
        np.bitwise_or(table[step:], table[:-step], out=spare[step:])
        table, spare = spare, table
        step *= 2
    return table


#: ``_BIT[i]``: the uint64 with only bit ``i`` set.
_BIT = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))


def _free_indices_by_bitmap(spos, member, run_len, run_row, run_slot, R: int, L: int) -> np.ndarray:
    """Index among free slots of every explicit member, in stream order, from bitmaps.

    ``spos``, ``member``: per slot of the R blocks of L slots in sorted order (block, value,
    position): its position and whether it is explicit. Per run of equal values (in the same
    order): ``run_len``, ``run_row`` (its block) and ``run_slot``, its group number within the
    block (-1 for the implicit run).

    A group's free slots are those of the implicit value and of the groups from it on (the
    larger values). Per block, a table holds one bitmap of 64-bit words per group, the implicit
    value's first and then the groups from the last; an OR-accumulation down the table turns each
    table row into its group's free slots. A member's index is the free slots up to the end of its
    word (a running popcount) minus those from its own slot on. Blocks are done in chunks of
    bounded table size (``_FREE_BITMAP_WORDS``, one block at least); the chunks share one table
    buffer, a spare one for the accumulation and the popcount buffers, allocated once (fresh
    memory for every chunk costs more in page faults than the work on it).
    """
    words_per_block = (L + 63) // 64
    table_rows = int(np.bincount(run_row, minlength=R).max(initial=1))   # the most runs of a block
    blocks_per_chunk = min(R, max(1, _FREE_BITMAP_WORDS // (table_rows * words_per_block)))
    table_row_of_run = np.where(run_slot < 0, 0, table_rows - 1 - run_slot)
    first_run_of_row = np.searchsorted(run_row, np.arange(R + 1))
    out = np.empty(np.count_nonzero(member), dtype=np.int64)
    chunk_words = table_rows * blocks_per_chunk * words_per_block
    table = np.empty(chunk_words, dtype=np.uint64)
    spare = np.empty(chunk_words, dtype=np.uint64)
    word_counts = np.empty(chunk_words, dtype=np.uint8)
    counts_through = np.empty(chunk_words, dtype=np.int32)
    done = 0
    for first_block in range(0, R, blocks_per_chunk):
        last_block = min(R, first_block + blocks_per_chunk)
        blocks = last_block - first_block
        words = table_rows * blocks * words_per_block
        pos = spos[first_block * L : last_block * L]                 # the chunk's slots ...
        runs = slice(first_run_of_row[first_block], first_run_of_row[last_block])   # ... and runs
        # The table is (table row, block, word), so that each table row's bitmaps are contiguous.
        plane = table_row_of_run[runs] * blocks + (run_row[runs] - first_block)
        key = np.repeat(plane * words_per_block, run_len[runs]) + (pos >> 6)
        bit = _BIT[pos & 63]
        free = table[:words].reshape(table_rows, blocks * words_per_block)
        free.fill(0)
        # A slot's bit is its own (a block's slots have distinct positions), so adding ORs them.
        np.add.at(table, key, bit)
        free = _or_accumulate_rows(free, spare[:words].reshape(free.shape)).ravel()
        # Free slots up to the end of each word (a running popcount along each table row) ...
        np.bitwise_count(free, out=word_counts[:words])
        free_through_word = counts_through[:words]
        np.cumsum(word_counts[:words].reshape(-1, words_per_block), axis=1, dtype=np.int32,
                  out=free_through_word.reshape(-1, words_per_block))
        explicit = member[first_block * L : last_block * L]
        at = key[explicit]
        # ... minus those from the member's own slot on (free for its own group) to the word's end.
        from_slot = free[at] & (np.uint64(0) - bit[explicit])
        out[done : done + len(at)] = free_through_word[at] - np.bitwise_count(from_slot)
        done += len(at)
    return out


def _value_runs_of_sorted(sorted_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(run_row, run_val, run_len)`` (int64): the runs of equal values of each row of
    ``sorted_rows`` (R x L, each row sorted), in order of row, then value."""
    R, L = sorted_rows.shape
    sv = sorted_rows.ravel()
    new = np.empty(R * L, dtype=bool)             # a run (row and value) starts here
    np.not_equal(sv[1:], sv[:-1], out=new[1:])
    new[::L] = True
    run_start = np.flatnonzero(new)
    return run_start // L, sv[run_start].astype(np.int64), np.diff(run_start, append=R * L)


def _value_runs_by_histogram(V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_value_runs_of_sorted` of the rows of ``V`` (uint8, R x L) sorted, from a histogram
    of each row instead (no sorted copy): a run per value that occurs, of its count."""
    R = V.shape[0]
    hist = np.empty((R, 256), dtype=np.int64)
    for row in range(R):
        hist[row] = np.bincount(V[row], minlength=256)
    occurring = np.flatnonzero(hist)                # row * 256 + value, in order
    return occurring >> 8, occurring & 255, hist.ravel()[occurring]


def _rows_groups(rows: np.ndarray, bits: int) -> dict:
    """Group analysis of equal-length blocks ``rows`` (R x L signed ints)."""
    R, L = rows.shape
    offset = 1 << (bits - 1)
    if bits <= 8:
        # Offset values in uint8 (modular, so from any integer dtype): a one-pass radix sort.
        V = np.add(rows, offset, dtype=np.uint8, casting="unsafe")
    else:
        V = (rows.astype(np.int64) + offset).astype(np.uint32)
    order = np.argsort(V, axis=1, kind="stable")
    spos = order.ravel().astype(np.int64, copy=False)
    if bits <= 8:
        run_row, run_val, run_len = _value_runs_by_histogram(V)
    else:
        run_row, run_val, run_len = _value_runs_of_sorted(np.take_along_axis(V, order, 1))
    row_first_run = np.searchsorted(run_row, np.arange(R))
    key = run_len * (1 << 18) + ((1 << 18) - 1 - run_val)
    best = np.maximum.reduceat(key, row_first_run)
    implicit_run = key == best[run_row]
    implicit_off = run_val[implicit_run]
    explicit_run = ~implicit_run
    member = np.repeat(explicit_run, run_len)

    if bits > _FREE_BITMAP_MAX_BITS:
        # Index among free slots: position minus the members of smaller values before it.
        # Implicit slots get a value above every real one: they sort last and count as free.
        Vm = np.where(V == implicit_off[:, None], 1 << bits, V).astype(V.dtype if bits < 16 else np.uint32)
        smaller_before = _smaller_before(Vm, bits)

    g_row = run_row[explicit_run]
    g_count = run_len[explicit_run]
    g_excl = np.cumsum(g_count) - g_count
    first_group_of_row = np.searchsorted(g_row, np.arange(R))
    g_base = np.concatenate((g_excl, [g_count.sum()]))[first_group_of_row]
    e_pos = spos[member]
    if bits > _FREE_BITMAP_MAX_BITS:
        index_free = e_pos - smaller_before[np.flatnonzero(member) // L, e_pos]
    else:
        group_in_block = np.cumsum(explicit_run) - 1 - _explicit_runs_before_row(run_row, explicit_run, R)
        run_slot = np.where(implicit_run, -1, group_in_block)
        index_free = _free_indices_by_bitmap(spos, member, run_len, run_row, run_slot, R, L)
    first_in_block = np.ones(len(g_row), dtype=bool)
    first_in_block[1:] = g_row[1:] != g_row[:-1]
    return dict(
        block_size=np.full(R, L),
        num_values=np.diff(np.append(row_first_run, len(run_len))),
        implicit=implicit_off - offset,
        block=g_row,
        value=run_val[explicit_run] - offset,
        count=g_count,
        domain_all=np.full(len(g_row), L),
        domain_free=L - (g_excl - g_base[g_row]),
        first_in_block=first_in_block,
        group=np.repeat(np.arange(len(g_row)), g_count),
        index_all=e_pos,
        index_free=index_free,
    )


def analyze(q: np.ndarray, bits: int, block_bits: int) -> Groups:
    """Cut the integers ``q`` (any shape, row-major) into blocks and list their groups."""
    check_params(bits, block_bits)
    q = np.asarray(q).ravel()
    if q.dtype.kind not in "iu":
        q = q.astype(np.int64)
    n = 1 << block_bits
    full = len(q) // n
    parts = []
    if full:
        parts.append(_rows_groups(q[: full * n].reshape(full, n), bits))
    if len(q) > full * n:
        parts.append(_rows_groups(q[full * n :].reshape(1, -1), bits))
    if not parts:
        parts.append(_rows_groups(np.zeros((0, 1), dtype=np.int64), bits))
    if len(parts) == 2:
        a, b = parts
        merged = {k: np.concatenate([a[k], b[k]]) for k in a}
        merged["block"] = np.concatenate([a["block"], b["block"] + full])
        merged["group"] = np.concatenate([a["group"], b["group"] + len(a["block"])])
        parts = [merged]
    return Groups(bits=bits, block_bits=block_bits, **parts[0])


@dataclass
class PositionParams:
    """Layer-wide parameters of a position mode, stored in the payload preamble."""

    count_k: int
    rice_bias: int = 0
    tables: list[HuffmanTable] | None = None


def count_codes(count: np.ndarray, first_in_block: np.ndarray, count_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(zigzag residual, EG order) of each group's count, predicted by the previous group's count.

    Counts of neighbouring values are close (histograms are smooth), so a count ``c`` is coded as
    ``r = c - p`` with ``p`` the previous group's count in the block (0 for the first group), zigzag
    mapped (``2r`` for ``r >= 0``, ``-2r - 1`` below) in EG of order ``(bitlen(p) >> 1) + count_k``:
    about half the bits of ``p``, the size of its Poisson noise.
    """
    prev = np.zeros_like(count)
    prev[1:] = count[:-1]
    prev[first_in_block] = 0
    r = count - prev
    return np.where(r >= 0, 2 * r, -2 * r - 1), (bit_length(prev) >> 1) + count_k


def _count_k(groups: Groups) -> int:
    """The count EG order offset (0..3) with the fewest bits; the same for every mode, so cached."""
    cache = groups.__dict__
    if "_count_k" not in cache:
        z, order = count_codes(groups.count, groups.first_in_block, 0)
        offsets = np.arange(4)[:, None]
        cache["_count_k"] = int(np.argmin(exp_golomb_length(z[None, :], order[None, :] + offsets).sum(axis=1)))
    return cache["_count_k"]


@functools.lru_cache(maxsize=None)
def _rice_symbol_map() -> tuple[int, int, np.ndarray]:
    """(top bias B, quotient limit, symbol index): ``index[k0 class, quotient, i]`` is
    ``i * MAX_SYMBOLS`` plus the Huffman symbol at bias ``RICE_BIASES[i]`` of a member with
    ``min(k0, B)`` = k0 class and the given quotient at bias B (see :func:`_huffman_params`)."""
    top_bias = max(RICE_BIASES)
    cap = MAX_SYMBOLS - 1
    quotient_limit = ((cap + 1) << top_bias) - 1
    k0_class = np.arange(top_bias + 1)[:, None, None]
    bias = np.asarray(RICE_BIASES)[None, None, :]
    quotient = np.arange(quotient_limit + 1)[None, :, None]
    symbol = np.minimum(quotient >> np.maximum(0, k0_class - bias), cap)
    return top_bias, quotient_limit, symbol + np.arange(len(RICE_BIASES)) * MAX_SYMBOLS


@functools.lru_cache(maxsize=None)
def _rice_hist_index(quotients: int, countings: int = 1) -> np.ndarray:
    """Where each (slot counting, class, k0 class, quotient at the top bias, bias) of
    :func:`_search_huffman`'s joint histogram lands in the histogram (slot counting, class, bias,
    symbol), flattened (see :func:`_rice_symbol_map`); read-only, shared between calls."""
    finest = max(TABLE_COUNTS)
    index = (np.arange(countings * finest)[:, None, None, None] * (len(RICE_BIASES) * MAX_SYMBOLS)
             + _rice_symbol_map()[2][None, :, :quotients]).ravel()
    index.flags.writeable = False
    return index


def _huffman_search(groups: Groups, slots: str, max_code_length: int):
    """Search Rice bias and table count for the fewest bits, from histograms (no packing).

    Returns ``(bias, histograms, bound)``: the chosen bias, the symbol histogram of each of its
    tables, and a lower bound on the member bits of any codes for them (their extra bits plus
    each histogram's entropy, which no prefix code beats). Cached per slot counting and code
    length limit (sizing bounds and table building share it); :func:`_search_huffman` fills it.
    """
    cache = groups.__dict__.setdefault("_huffman_search_cache", {})
    if (slots, max_code_length) not in cache:
        _search_huffman(groups, (slots,), max_code_length)
    return cache[slots, max_code_length]


def _search_huffman(groups: Groups, countings: tuple[str, ...], max_code_length: int) -> None:
    """:func:`_huffman_search` for each slot counting of ``countings``, into its cache.

    The countings are searched side by side, their groups stacked one counting after the other,
    so that each numpy pass over groups, histograms and tables serves all of them (for small
    layers those passes are most of the time); the passes over members run per counting. Each
    counting's result is the same as searched alone (the same histograms, and each table's
    entropy summed on its own).

    Table classes nest: with T tables the octave is cut at multiples of 1/T, so the classes of 2
    and 1 tables are unions of those of 4, and one histogram per bias serves every table count.
    """
    S, G = len(countings), len(groups.count)
    domain = np.concatenate([groups.domain(s) for s in countings])          # per stacked group
    count = np.concatenate([groups.count] * S)
    finest = max(TABLE_COUNTS)
    k0, group_class = rice_context(domain, count, 0, finest)
    escape_bits = bit_length(domain - 1)
    cap = MAX_SYMBOLS - 1
    # One pass over the members for every bias. With the largest bias B, a member's quotient at
    # bias b is its quotient at B shifted right by max(0, min(k0, B) - b) more bits (the shift
    # max(0, k0 - b) minus max(0, k0 - B)). So a histogram over (class, min(k0, B), quotient at B)
    # gives every bias's histogram; quotients at B are clipped at (cap + 1) << B - 1, which still
    # lands on the escape symbol after any shift of B bits or fewer.
    top_bias, quotient_limit, _ = _rice_symbol_map()
    top_shift = np.maximum(0, k0 - top_bias)                            # per group
    max_distance = np.concatenate([groups.max_distance(s) for s in countings])
    largest_top_quotient = int((max_distance >> top_shift).max(initial=0))
    quotients = min(largest_top_quotient, quotient_limit) + 1            # only the quotients that occur
    group_key = (group_class * (top_bias + 1) + np.minimum(k0, top_bias)) * quotients
    biases = np.asarray(RICE_BIASES)
    group_k = np.maximum(0, k0[None, :] - biases[:, None])              # per bias and group
    extra = (count * group_k).reshape(len(biases), S, G).sum(axis=2)     # per bias and counting
    # The passes over the members, one counting at a time (one histogram for all is slower):
    # joint[counting, class, min(k0, B), quotient at B].
    joint_size = finest * (top_bias + 1) * quotients
    joint = np.empty(S * joint_size, dtype=np.int64)
    for i, slots in enumerate(countings):
        own = slice(i * G, (i + 1) * G)
        d = groups.distances(slots)
        # (In place where they can be: fresh member-sized arrays cost page faults.)
        top_quotient = groups.per_member(top_shift[own])
        np.right_shift(d, top_quotient, out=top_quotient)
        if largest_top_quotient > quotient_limit:
            np.minimum(top_quotient, quotient_limit, out=top_quotient)
        member_key = groups.per_member(group_key[own])
        member_key += top_quotient
        joint[i * joint_size : (i + 1) * joint_size] = np.bincount(member_key, minlength=joint_size)
        # Members that may escape at some bias (a quotient never exceeds its value at the top bias).
        maybe_escaped = np.flatnonzero(top_quotient >= cap) if largest_top_quotient >= cap else ()
        if len(maybe_escaped):
            eg = groups.group[maybe_escaped] + i * G
            escaped = (d[maybe_escaped] >> group_k[:, eg]) >= cap
            extra[:, i] += ((escape_bits[eg] - group_k[:, eg]) * escaped).sum(axis=1)
    # hist[counting, bias, class, symbol]
    # Only the joint entries that occur (most do not) are spread; leaving out weights of 0 leaves
    # every sum the same.
    occurring = np.flatnonzero(joint)
    hist = np.bincount(_rice_hist_index(quotients, S).reshape(-1, len(biases))[occurring].ravel(),
                       weights=np.repeat(joint[occurring], len(biases)),
                       minlength=S * finest * len(biases) * MAX_SYMBOLS)
    hist = hist.astype(np.int64).reshape(S, finest, len(biases), MAX_SYMBOLS).transpose(0, 2, 1, 3)
    # Every candidate table's histogram, in the order (counting, bias, table count, table), and the
    # entropy terms of its used symbols, computed at once; each table's sum is taken on its own.
    candidates = np.concatenate(
        [hist.reshape(S, len(biases), num_tables, finest // num_tables, MAX_SYMBOLS).sum(axis=3)
         for num_tables in TABLE_COUNTS], axis=2).reshape(-1, MAX_SYMBOLS)
    used = candidates > 0
    used_per_table = used.sum(axis=1)
    used_end = np.cumsum(used_per_table)
    used_counts = candidates[used]
    terms = -(used_counts * np.log2(used_counts / np.repeat(candidates.sum(axis=1), used_per_table)))
    used_per_table, used_end = used_per_table.tolist(), used_end.tolist()
    # (A sum of one term is that term, of none 0.0: no numpy call for those.)
    entropies = [float(np.add.reduce(terms[end - n : end])) if n > 1 else float(terms[end - 1]) if n else 0.0
                 for n, end in zip(used_per_table, used_end)]
    cache = groups.__dict__.setdefault("_huffman_search_cache", {})
    row = 0
    for i, slots in enumerate(countings):
        best = None
        for bias, bias_extra in zip(RICE_BIASES, extra[:, i].tolist()):
            for num_tables in TABLE_COUNTS:
                # Score with ideal (entropy) code lengths; build the real codes only for the winner.
                cost = bias_extra
                entropy = 0.0
                for _ in range(num_tables):
                    used_n = used_per_table[row]
                    table_entropy = entropies[row]
                    cost += table_entropy + 6 * used_n + 7 * max_code_length
                    entropy += table_entropy
                    row += 1
                if best is None or cost < best[0]:
                    best = (cost, bias, candidates[row - num_tables : row], bias_extra + entropy)
        # A table's alphabet ends one past its last used symbol (escape included), at most MAX_SYMBOLS.
        hists = []
        for h in best[2]:
            used_symbols = np.flatnonzero(h)
            hists.append(h[: int(min(MAX_SYMBOLS, (used_symbols[-1] if len(used_symbols) else 0) + 2))])
        # The entropy is a float sum: a bit less keeps the bound below the true one despite rounding.
        cache[slots, max_code_length] = (best[1], hists, max(0, math.floor(best[3] * (1 - 1e-9)) - 1))


def _huffman_params(groups: Groups, slots: str, count_k: int, max_code_length: int) -> PositionParams:
    """The searched Rice bias and the length-limited codes of its tables' histograms."""
    bias, hists, _ = _huffman_search(groups, slots, max_code_length)
    tables = [HuffmanTable.from_lengths(code_lengths(h, max_code_length)) for h in hists]
    return PositionParams(count_k=count_k, rice_bias=bias, tables=tables)


def choose_params(groups: Groups, mode: str, slots: str, max_code_length: int = MAX_CODE_LENGTH) -> PositionParams:
    count_k = _count_k(groups)
    if mode == "huffman":
        return _huffman_params(groups, slots, count_k, max_code_length)
    return PositionParams(count_k=count_k)


def _distance_widths(groups: Groups, slots: str) -> np.ndarray:
    """Per group: the distance mode's width field, bit_length of the group's largest distance."""
    return bit_length(groups.max_distance(slots))


def _huffman_codes(groups: Groups, slots: str, params: PositionParams):
    """Per group: Rice shift, escape symbol and the first entry of its table in one flat code list
    over all tables; the flat (codes, lengths); per member: its symbol; and the members that
    escape. Cached per slot counting and parameters (sizing and packing share it)."""
    cache = groups.__dict__.setdefault("_huffman_codes_cache", {})
    key = (slots, params.rice_bias, tuple(params.tables))
    if key not in cache:
        tables = params.tables
        sizes = [t.num_symbols for t in tables]
        group_k, group_table = rice_context(groups.domain(slots), groups.count, params.rice_bias, len(tables))
        group_escape = np.asarray(sizes)[group_table] - 1
        group_offset = np.cumsum([0] + sizes[:-1])[group_table]
        codes, lengths = (np.concatenate(part) for part in zip(*(t.codes() for t in tables)))
        symbol = groups.per_member(group_k)
        np.right_shift(groups.distances(slots), symbol, out=symbol)
        # A group's quotients are at most its largest distance's, so most layers need no escape test.
        escaped = np.zeros(0, dtype=np.int64)
        if ((groups.max_distance(slots) >> group_k) >= group_escape).any():
            escape = groups.per_member(group_escape)
            escaped = np.flatnonzero(symbol >= escape)
            symbol[escaped] = escape[escaped]
        cache.clear()                             # one parameter set per slot counting is enough
        cache[key] = (group_k, group_escape, group_offset, codes, lengths, symbol, escaped)
    return cache[key]


def _member_fields(groups: Groups, mode: str, slots: str, params: PositionParams):
    """(value, nbits) of each group member's position field, and the per-group width field."""
    domain = groups.domain(slots)
    if mode == "repeat":
        return groups.index(slots).astype(np.uint64), groups.per_member(bit_length(domain - 1)), None
    d = groups.distances(slots)
    if mode == "distance":
        width = _distance_widths(groups, slots)
        return d.astype(np.uint64), groups.per_member(width), width
    group_k, group_escape, group_offset, codes, lengths, s, escaped = _huffman_codes(groups, slots, params)
    # A member's field is its symbol's code, then the remainder d - (s << k) in k bits: the sum of
    # (code - s) << k (uint64, wrapping) and d. One table per Rice shift k and flat code gives that
    # term and the width length + k, so each member needs one lookup and one addition.
    num_codes = len(codes)
    symbol_of_code = np.concatenate([np.arange(t.num_symbols, dtype=np.uint64) for t in params.tables])
    shifts = np.arange(int(group_k.max(initial=0)) + 1)[:, None]
    term = ((codes - symbol_of_code) << shifts.astype(np.uint64)).ravel()
    width = (lengths + shifts).ravel()
    at = groups.per_member(group_k * num_codes + group_offset)
    at += s
    value = term[at]
    value += d.view(np.uint64)                        # distances are non-negative int64
    nbits = width[at]
    if len(escaped):
        # The escape code is followed by the whole distance in bit_length(domain - 1) bits.
        g = groups.group[escaped]
        flat = group_offset[g] + s[escaped]
        extra_bits = bit_length(domain - 1)[g]
        value[escaped] = (codes[flat] << extra_bits.astype(np.uint64)) | d[escaped].astype(np.uint64)
        nbits[escaped] = lengths[flat] + extra_bits
    return value, nbits, None


def _member_bits_per_block(groups: Groups, mode: str, slots: str, params: PositionParams) -> np.ndarray:
    """Per block: the bits of its members' position fields (the sum of ``_member_fields``'s
    nbits), counted per group where the field width is the group's, and from a per-block symbol
    histogram in the Huffman mode."""
    B, G = len(groups.block_size), len(groups.count)
    domain = groups.domain(slots)
    code_bits = 0
    if mode == "repeat":
        per_group = groups.count * bit_length(domain - 1)
    elif mode == "distance":
        per_group = groups.count * _distance_widths(groups, slots)
    else:
        # Every member has its group's Rice shift of extra bits, except escaped members, which
        # have bit_length(domain - 1) instead.
        group_k, group_escape, group_offset, _, lengths, symbol, escaped = _huffman_codes(groups, slots, params)
        per_group = groups.count * group_k
        if len(escaped):
            escaped_per_group = np.bincount(groups.group[escaped], minlength=G)
            per_group = per_group + escaped_per_group * (bit_length(domain - 1) - group_k)
        code_index = groups.per_member(groups.block * len(lengths) + group_offset) + symbol
        code_bits = np.bincount(code_index, minlength=B * len(lengths)).reshape(B, len(lengths)) @ lengths
    return code_bits + np.bincount(groups.block, weights=per_group, minlength=B).astype(np.int64)


def _group_header_codes(groups: Groups, count_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What each group header codes, before Exp-Golomb: the value delta (the value minus the
    previous group's, minus one; 0 for a block's first group, which stores its value in ``b``
    bits instead) in EG(0), and the count's zigzag residual with its EG order (:func:`count_codes`)."""
    prev = np.empty_like(groups.value)
    prev[1:] = groups.value[:-1]
    value_delta = np.where(groups.first_in_block, 0, groups.value - prev - 1)
    return (value_delta, *count_codes(groups.count, groups.first_in_block, count_k))


def _group_header_fields(groups: Groups, count_k: int):
    """Each group header's two fields as (value field, its bits, count field, its bits): the
    fields of :func:`_group_header_codes`, a block's first value as ``b``-bit two's complement."""
    value_delta, count_code, count_order = _group_header_codes(groups, count_k)
    delta_v, delta_n = exp_golomb_fields(value_delta, 0)
    first = groups.first_in_block
    value_field = np.where(first, (groups.value & ((1 << groups.bits) - 1)).astype(np.uint64), delta_v)
    value_bits = np.where(first, groups.bits, delta_n)
    return (value_field, value_bits, *exp_golomb_fields(count_code, count_order))


def block_fields(groups: Groups, mode: str, slots: str, params: PositionParams):
    """All fields of all blocks in stream order: (values, nbits, per-block byte lengths)."""
    bits = groups.bits
    B, E = len(groups.block_size), len(groups.group)
    header = 3 if mode == "distance" else 2
    group_fields = header + groups.count
    block_fields_n = 3 + np.bincount(groups.block, weights=group_fields, minlength=B).astype(np.int64)
    block_off = np.cumsum(block_fields_n) - block_fields_n
    cg = np.cumsum(group_fields) - group_fields
    first_group = np.searchsorted(groups.block, np.arange(B))
    row_base = np.concatenate((cg, [group_fields.sum()]))[first_group]
    group_off = block_off[groups.block] + 2 + cg - row_base[groups.block]

    total = int(block_fields_n.sum())
    values = np.zeros(total, dtype=np.uint64)
    nbits = np.zeros(total, dtype=np.int64)
    mask = (1 << bits) - 1
    values[block_off], nbits[block_off] = exp_golomb_fields(groups.num_values - 1, 0)
    values[block_off + 1], nbits[block_off + 1] = (groups.implicit & mask).astype(np.uint64), bits

    values[group_off], nbits[group_off], values[group_off + 1], nbits[group_off + 1] = \
        _group_header_fields(groups, params.count_k)

    member_value, member_bits, width = _member_fields(groups, mode, slots, params)
    if width is not None:
        values[group_off + 2], nbits[group_off + 2] = width.astype(np.uint64), DISTANCE_WIDTH_BITS
    # Member i of the layer is member i - first_member[g] of its group g.
    first_member = np.cumsum(groups.count) - groups.count
    dest = np.arange(E) + groups.per_member(group_off + header - first_member)
    values[dest], nbits[dest] = member_value, member_bits

    pad_at = block_off + block_fields_n - 1
    ends = np.cumsum(nbits)
    block_bits_n = ends[pad_at] - np.concatenate(([0], ends[pad_at[:-1]])) if B else np.zeros(0, np.int64)
    nbits[pad_at] = -block_bits_n % 8
    return values, nbits, (block_bits_n + nbits[pad_at]) // 8


def _pack_blocks(groups: Groups, mode: str, slots: str, params: PositionParams) -> tuple[bytes, np.ndarray]:
    """The blocks of a position mode packed: (their bytes, per-block byte lengths), the same as
    ``pack_fields`` of :func:`block_fields`.

    Instead of listing every field in stream order first, each kind of field (block headers, group
    headers, members) gets its stream position from the bit counts (per block, per group, and a
    running sum over the members) and is written there with :func:`place_fields`; the padding
    fields are zero bits and need no writing.
    """
    bits = groups.bits
    B, G = len(groups.block_size), len(groups.count)
    mask = (1 << bits) - 1
    num_values_field, num_values_bits = exp_golomb_fields(groups.num_values - 1, 0)
    value_field, value_bits, group_count_field, group_count_bits = _group_header_fields(groups, params.count_k)
    member_value, member_bits, width = _member_fields(groups, mode, slots, params)
    header_bits = value_bits + group_count_bits + (DISTANCE_WIDTH_BITS if width is not None else 0)

    # Bits of each group (header and members) and of each block (header and groups), unpadded.
    member_end = np.cumsum(member_bits)                                   # per member, inclusive
    first_member = np.cumsum(groups.count) - groups.count
    member_bits_before = np.where(first_member > 0, member_end[first_member - 1], 0) if G else first_member
    member_bits_through = np.concatenate((member_bits_before[1:], member_end[-1:])) if G else member_bits_before
    group_bits = header_bits + (member_bits_through - member_bits_before)
    group_bits_before = np.concatenate(([0], np.cumsum(group_bits)))     # G + 1
    first_group = np.searchsorted(groups.block, np.arange(B + 1))
    block_header_bits = num_values_bits + bits
    block_bits_n = block_header_bits + (group_bits_before[first_group[1:]] - group_bits_before[first_group[:-1]])
    block_bytes = (block_bits_n + 7) // 8                                 # with the padding field
    block_start = 8 * (np.cumsum(block_bytes) - block_bytes)
    total_bits = 8 * int(block_bytes.sum())
    words = np.zeros(total_bits // 64 + 1, dtype=np.uint64)   # a spare word for fields of no bits

    # Where each field starts in the stream.
    group_start = (block_start + block_header_bits - group_bits_before[first_group[:-1]])[groups.block] \
        + group_bits_before[:-1]
    members_start = group_start + header_bits                             # per group
    member_start = np.subtract(member_end, member_bits, out=member_end)   # per member, running ...
    member_start += groups.per_member(members_start - member_bits_before)  # ... from its group's start

    place_fields(words, block_start, num_values_field, num_values_bits)
    place_fields(words, block_start + num_values_bits, (groups.implicit & mask).astype(np.uint64), bits)
    place_fields(words, group_start, value_field, value_bits)
    place_fields(words, group_start + value_bits, group_count_field, group_count_bits)
    if width is not None:
        place_fields(words, group_start + value_bits + group_count_bits, width.astype(np.uint64),
                     DISTANCE_WIDTH_BITS)
    place_fields(words, member_start, member_value, member_bits)
    return words.astype(">u8").tobytes()[: total_bits // 8], block_bytes


def _preamble(mode: str, params: PositionParams) -> bytes:
    w = BitWriter()
    w.write(params.count_k, COUNT_K_BITS)
    if mode == "huffman":
        w.write(params.rice_bias, RICE_BIAS_BITS)
        w.write(len(params.tables).bit_length() - 1, TABLES_LOG2_BITS)
        for table in params.tables:
            table.write(w)
    return w.getvalue()


def _preamble_bytes(mode: str, params: PositionParams) -> int:
    """``len(_preamble(mode, params))``, counted instead of packed."""
    bits = COUNT_K_BITS
    if mode == "huffman":
        bits += RICE_BIAS_BITS + TABLES_LOG2_BITS
        for table in params.tables:
            bits += SYMBOL_BITS + LENGTH_BITS + COUNT_BITS * table.max_length + SYMBOL_BITS * len(table.symbols)
    return (bits + 7) // 8


def _header_bits(groups: Groups, mode: str, params: PositionParams) -> tuple[np.ndarray, np.ndarray]:
    """Bits of each block header and of each group header (cached per count order: every mode
    shares them but for the distance mode's width field)."""
    cache = groups.__dict__.setdefault("_header_bits_cache", {})
    if params.count_k not in cache:
        value_delta, count_code, count_order = _group_header_codes(groups, params.count_k)
        value_bits = np.where(groups.first_in_block, groups.bits, exp_golomb_length(value_delta, 0))
        group_bits = value_bits + exp_golomb_length(count_code, count_order)
        cache[params.count_k] = (exp_golomb_length(groups.num_values - 1, 0) + groups.bits, group_bits)
    block_bits, group_bits = cache[params.count_k]
    if mode == "distance":
        group_bits = group_bits + DISTANCE_WIDTH_BITS
    return block_bits, group_bits


def payload_size(groups: Groups, mode: str, slots: str, params: PositionParams | None = None) -> int:
    """Exact payload size in bytes of a position mode, without packing it."""
    params = params or choose_params(groups, mode, slots)
    block_bits, group_bits = _header_bits(groups, mode, params)
    B = len(groups.block_size)
    per_block = block_bits + np.bincount(groups.block, weights=group_bits, minlength=B).astype(np.int64)
    per_block += _member_bits_per_block(groups, mode, slots, params)
    return _preamble_bytes(mode, params) + BLOCK_OFFSET_BYTES * B + int(((per_block + 7) // 8).sum())


def huffman_size_bounds(groups: Groups, countings, max_code_length: int = MAX_CODE_LENGTH) -> list[int]:
    """:func:`huffman_size_bound` of each slot counting of ``countings``, their parameter
    searches done side by side (one pass for all, see :func:`_search_huffman`)."""
    cache = groups.__dict__.get("_huffman_search_cache", {})
    todo = tuple(s for s in dict.fromkeys(countings) if (s, max_code_length) not in cache)
    if todo:
        _search_huffman(groups, todo, max_code_length)
    return [huffman_size_bound(groups, s, max_code_length) for s in countings]


def huffman_size_bound(groups: Groups, slots: str, max_code_length: int = MAX_CODE_LENGTH) -> int:
    """Bytes that the Huffman mode's ``payload_size`` is never below, without building its codes.

    From the parameter search alone: the member bits are at least its entropy bound, each table
    takes at least the preamble bits of a code of one-bit lengths, and the blocks take at least
    their total bits in whole bytes.
    """
    _, hists, member_bits = _huffman_search(groups, slots, max_code_length)
    block_bits, group_bits = _header_bits(groups, "huffman", PositionParams(count_k=_count_k(groups)))
    preamble = COUNT_K_BITS + RICE_BIAS_BITS + TABLES_LOG2_BITS + sum(
        SYMBOL_BITS + LENGTH_BITS + COUNT_BITS + SYMBOL_BITS * int(np.count_nonzero(h)) for h in hists)
    stream = int(block_bits.sum()) + int(group_bits.sum()) + member_bits
    return (preamble + 7) // 8 + BLOCK_OFFSET_BYTES * len(groups.block_size) + (stream + 7) // 8


def encode_positions(groups: Groups, mode: str, slots: str, params: PositionParams | None = None) -> bytes:
    params = params or choose_params(groups, mode, slots)
    blocks, block_bytes = _pack_blocks(groups, mode, slots, params)
    offsets = (np.cumsum(block_bytes) - block_bytes).astype("<u4")
    return _preamble(mode, params) + offsets.tobytes() + blocks


def encode_raw(q: np.ndarray, bits: int) -> bytes:
    q = np.asarray(q).ravel().astype(np.int64)
    if bits == 8:
        return q.astype(np.int8).tobytes()
    if bits == 16:
        return q.astype(">i2").tobytes()
    nib = np.concatenate([(q & 15).astype(np.uint8), np.zeros(len(q) % 2, np.uint8)])
    return ((nib[0::2] << 4) | nib[1::2]).astype(np.uint8).tobytes()


def decode_raw(payload: bytes, count: int, bits: int) -> np.ndarray:
    need = (count * bits + 7) // 8
    if len(payload) != need:
        raise FormatError(f"raw payload is {len(payload)} bytes, {need} expected for {count} weights", offset=0)
    if bits == 8:
        return np.frombuffer(payload, np.int8).copy()
    if bits == 16:
        return np.frombuffer(payload, ">i2").astype(np.int16)
    b = np.frombuffer(payload, np.uint8)
    nib = np.empty(2 * len(b), dtype=np.int8)
    nib[0::2], nib[1::2] = b >> 4, b & 15
    return np.where(nib > 7, nib - 16, nib).astype(np.int8)[:count]


@dataclass
class StageTrace:
    """The tokens crossing each stage boundary, as the hardware streams carry them.

    ``members``: BlockParser -> DistanceAccumulator, tuples ``("BLOCK", implicit, n)``,
    ``("MEMBER", value, index, first, absolute)``, ``("END",)``.
    ``writes``: DistanceAccumulator -> RepeatExpander, ``("BLOCK", implicit, n)``,
    ``("MEMBER", value, position)``, ``("END",)``.
    """

    members: list
    writes: list

    def block(self, implicit: int, n: int) -> None:
        self.members.append(("BLOCK", implicit, n))
        self.writes.append(("BLOCK", implicit, n))

    def group(self, value: int, indices, positions, absolute: bool) -> None:
        for j, (i, p) in enumerate(zip(indices, positions)):
            self.members.append(("MEMBER", value, int(i), int(j == 0), int(absolute)))
            self.writes.append(("MEMBER", value, int(p)))

    def end(self) -> None:
        self.members.append(("END",))
        self.writes.append(("END",))


def decode_block(reader: BitReader, n: int, bits: int, mode: str, slots: str, params: PositionParams,
                 huffman: CanonicalHuffmanDecoder | None = None, trace: StageTrace | None = None) -> np.ndarray:
    """Decode one block of ``n`` weights starting at the reader's position (the hardware's order)."""
    num_values = reader.read_exp_golomb(0) + 1
    if num_values > min(n, 1 << bits):
        raise reader.error(f"block claims {num_values} distinct values in {n} slots of {bits} bits")
    implicit = reader.read_signed(bits)
    if trace:
        trace.block(implicit, n)
    hi = (1 << (bits - 1)) - 1
    accumulator = DistanceAccumulator(n, slots)
    expander = RepeatExpander(n)
    value = None
    prev_count = 0
    for g in range(num_values - 1):
        if g == 0:
            value = reader.read_signed(bits)
        else:
            value = value + reader.read_exp_golomb(0) + 1
            if value > hi:
                raise reader.error(f"group value {value} outside the {bits}-bit range")
        if value == implicit:
            raise reader.error(f"group repeats the implicit value {value}")
        z = reader.read_exp_golomb((prev_count.bit_length() >> 1) + params.count_k)
        count = prev_count + (z >> 1 if z % 2 == 0 else -(z >> 1) - 1)
        prev_count = count
        if count < 1:
            raise reader.error(f"group count {count} is not positive")
        if count > accumulator.free - 1:
            raise reader.error(f"group count {count} exceeds the {accumulator.free - 1} slots left in the block")
        domain = accumulator.domain
        if mode == "repeat":
            fields = reader.read_array(count, int(bit_length(np.int64(domain - 1))))
            positions = accumulator.place(reader, fields)
        elif mode == "distance":
            width = reader.read(DISTANCE_WIDTH_BITS)
            if width > bits_for(n):
                raise reader.error(f"distance width {width} exceeds the block's {bits_for(n)} bits")
            fields = reader.read_array(count, width)
            positions = accumulator.positions(reader, fields)
        else:
            k, table = rice_context(domain, count, params.rice_bias, len(params.tables))
            fields = huffman.decode_distances(reader, count, domain, int(k), int(table))
            positions = accumulator.positions(reader, fields)
        if trace:
            trace.group(value, fields, positions, mode == "repeat")
        expander.write(value, positions)
    if trace:
        trace.end()
    return expander.finish(implicit)


def bits_for(n: int) -> int:
    return int(n - 1).bit_length()


def decode_positions(payload: bytes, count: int, bits: int, mode: str, slots: str, block_bits: int,
                     trace: StageTrace | None = None) -> np.ndarray:
    """Decode a position-mode payload into ``count`` integers (int8 or int16)."""
    check_params(bits, block_bits)
    if mode not in POSITION_MODES or slots not in SLOTS:
        raise FormatError(f"unknown mode {mode!r} / slots {slots!r}", offset=0)
    reader = BitReader(payload)
    count_k = reader.read(COUNT_K_BITS)
    params = PositionParams(count_k=count_k)
    huffman = None
    if mode == "huffman":
        params.rice_bias = reader.read(RICE_BIAS_BITS)
        num_tables = 1 << reader.read(TABLES_LOG2_BITS)
        params.tables = [HuffmanTable.read(reader) for _ in range(num_tables)]
        huffman = CanonicalHuffmanDecoder(params.tables)
    reader.align()
    n = 1 << block_bits
    nblocks = -(-count // n)
    table_at = reader.pos // 8
    blocks_at = table_at + BLOCK_OFFSET_BYTES * nblocks
    if blocks_at + nblocks > len(payload):
        raise FormatError(f"payload of {len(payload)} bytes too short for {nblocks} blocks", offset=table_at)
    offsets = np.frombuffer(payload, "<u4", nblocks, table_at).astype(np.int64)
    ends = np.append(offsets[1:], len(payload) - blocks_at)
    if nblocks and (offsets[0] != 0 or np.any(ends < offsets) or ends[-1] > len(payload) - blocks_at):
        raise FormatError("block offset table is not increasing or points past the payload", offset=table_at)
    out = np.empty(count, dtype=np.int8 if bits <= 8 else np.int16)
    for b in range(nblocks):
        size = min(n, count - b * n)
        block_reader = BitReader(payload, blocks_at + int(offsets[b]), blocks_at + int(ends[b]))
        out[b * n : b * n + size] = decode_block(block_reader, size, bits, mode, slots, params, huffman, trace)
    return out


def encode_layer(q: np.ndarray, bits: int, mode: str, slots: str, block_bits: int,
                 groups: Groups | None = None) -> bytes:
    if mode == "raw":
        return encode_raw(q, bits)
    if mode not in POSITION_MODES or slots not in SLOTS:
        raise ValueError(f"mode must be one of {MODES} and slots one of {SLOTS}")
    groups = groups or analyze(q, bits, block_bits)
    return encode_positions(groups, mode, slots)


def decode_layer(payload: bytes, count: int, bits: int, mode: str, slots: str, block_bits: int) -> np.ndarray:
    if mode == "raw":
        return decode_raw(payload, count, bits)
    return decode_positions(payload, count, bits, mode, slots, block_bits)


def trace_layer(payload: bytes, count: int, bits: int, mode: str, slots: str, block_bits: int):
    """Decode and return ``(weights, StageTrace)``: the golden token streams for the hardware.

    ``raw`` is traced as the hardware decodes it: blocks of ``2**block_bits`` weights, each block
    a ``BLOCK`` (implicit 0), one absolute ``MEMBER`` per weight (its own group) and ``END``.
    """
    trace = StageTrace([], [])
    if mode == "raw":
        weights = decode_raw(payload, count, bits)
        n = 1 << block_bits
        for start in range(0, count, n):
            block = weights[start : start + n]
            trace.block(0, len(block))
            for p, w in enumerate(block):
                trace.group(int(w), [p], [p], True)
            trace.end()
        return weights, trace
    return decode_positions(payload, count, bits, mode, slots, block_bits, trace), trace

