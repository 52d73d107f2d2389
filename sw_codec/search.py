"""The encoder's parameter search: a position mode's layer-wide parameters, from histograms.

Every parameter the preamble stores is chosen here for the fewest bits, without packing: the
count order offset ``count_k`` (all modes) and, in ``huffman`` mode, the Rice bias and the number
of tables with their codes. The decoder accepts any bias in ``0 .. 2**RICE_BIAS_BITS - 1`` and
any table count of ``sw_codec.format.NUM_TABLES_CHOICES``; the encoder tries those below.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .analysis import Groups
from .bits import bit_length, exp_golomb_length
from .decoder import PositionParams
from .format import MAX_CODE_LENGTH, MAX_SYMBOLS
from .huffman import HuffmanTable, code_lengths, rice_context

__all__ = ["RICE_BIASES", "TABLE_COUNTS", "COUNT_K_OFFSETS", "count_codes", "best_count_k", "huffman_search",
           "search_huffman", "choose_params"]

#: Rice biases, table counts and count order offsets the encoder tries.
RICE_BIASES = range(0, 4)
TABLE_COUNTS = (1, 2, 4)
COUNT_K_OFFSETS = range(0, 4)


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


def best_count_k(groups: Groups) -> int:
    """The count EG order offset (of ``COUNT_K_OFFSETS``) with the fewest bits; the same for every mode, so cached."""
    cache = groups.__dict__
    if "_count_k" not in cache:
        z, order = count_codes(groups.count, groups.first_in_block, 0)
        offsets = np.asarray(COUNT_K_OFFSETS)[:, None]
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
    :func:`search_huffman`'s joint histogram lands in the histogram (slot counting, class, bias,
    symbol), flattened (see :func:`_rice_symbol_map`); read-only, shared between calls."""
    finest = max(TABLE_COUNTS)
    index = (np.arange(countings * finest)[:, None, None, None] * (len(RICE_BIASES) * MAX_SYMBOLS)
             + _rice_symbol_map()[2][None, :, :quotients]).ravel()
    index.flags.writeable = False
    return index


def huffman_search(groups: Groups, slots: str, max_code_length: int):
    """Search Rice bias and table count for the fewest bits, from histograms (no packing).

    Returns ``(bias, histograms, bound)``: the chosen bias, the symbol histogram of each of its
    tables, and a lower bound on the member bits of any codes for them (their extra bits plus
    each histogram's entropy, which no prefix code beats). Cached per slot counting and code
    length limit (sizing bounds and table building share it); :func:`search_huffman` fills it.
    """
    cache = groups.__dict__.setdefault("_huffman_search_cache", {})
    if (slots, max_code_length) not in cache:
        search_huffman(groups, (slots,), max_code_length)
    return cache[slots, max_code_length]


def search_huffman(groups: Groups, countings: tuple[str, ...], max_code_length: int) -> None:
    """:func:`huffman_search` for each slot counting of ``countings``, into its cache.

    The countings are searched side by side, their groups stacked one counting after the other,
    so that each numpy pass over groups, histograms and tables serves all of them (for small
    layers those passes are most of the time); the passes over members run per counting. Each
    counting's result is the same as searched alone (the same histograms, and each table's
    entropy summed on its own).

    Table classes nest: with T tables the octave is cut at multiples of 1/T, so the classes of 2
    and 1 tables are unions of those of 4, and one histogram per bias serves every table count.

    Candidates are scored with ideal (entropy) code lengths, except when ``max_code_length`` is
    below the format's ``MAX_CODE_LENGTH`` (block format 2's 11 bits): the limit then costs enough
    (up to 0.02 bits/weight) that each candidate is scored with its real length-limited codes
    (``code_lengths``, 12 candidates of at most 4 tables of 64 symbols: milliseconds a layer).
    """
    real_codes = max_code_length < MAX_CODE_LENGTH
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
                # Score with ideal (entropy) code lengths, or real ones under a binding limit; build the
                # real codes of the winner.
                cost = bias_extra
                entropy = 0.0
                for _ in range(num_tables):
                    used_n = used_per_table[row]
                    table_entropy = entropies[row]
                    if real_codes:
                        lengths = code_lengths(candidates[row], max_code_length)
                        cost += int(candidates[row] @ lengths) + 6 * used_n + 7 * int(lengths.max(initial=1))
                    else:
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
    bias, hists, _ = huffman_search(groups, slots, max_code_length)
    tables = [HuffmanTable.from_lengths(code_lengths(h, max_code_length)) for h in hists]
    return PositionParams(count_k=count_k, rice_bias=bias, tables=tables)


def choose_params(groups: Groups, mode: str, slots: str, max_code_length: int = MAX_CODE_LENGTH) -> PositionParams:
    count_k = best_count_k(groups)
    if mode == "huffman":
        return _huffman_params(groups, slots, count_k, max_code_length)
    return PositionParams(count_k=count_k)
