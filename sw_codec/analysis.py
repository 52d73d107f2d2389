"""Block analysis: a layer's integers as blocks, groups and member positions.

The flattened layer is cut into blocks of ``2**block_bits`` weights (the last may be shorter). In
each block the most frequent value is *implicit* (ties: the smallest): it is stored once and
fills every slot no other value claims. Every other distinct value is a *group*: the value, its
count and its positions, in increasing value order. :func:`analyze` lists them for the whole
layer at once, vectorized over blocks; every position mode's encoder (``sw_codec.encoder``)
works from its :class:`Groups`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .format import check_params

__all__ = ["Groups", "analyze"]


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
