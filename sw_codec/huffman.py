"""Canonical, length-limited Huffman codes: construction, table format and the decoder stage.

A canonical code is fully described by ``count[len]`` (how many symbols have a code of each
length) and ``symbols`` (the coded symbols sorted by code length, then by symbol value). Codes of
one length are consecutive integers; the first code of each length follows from the counts
(as in DEFLATE and puff.c). The decoder walks lengths 1, 2, ... comparing the bits read so far with
the first code of that length: exactly the per-length comparators a hardware decoder evaluates
in parallel in one cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bits import BitReader, BitWriter, bit_length
from .format import COUNT_BITS, LENGTH_BITS, MAX_CODE_LENGTH, SYMBOL_BITS


def code_lengths(freqs: np.ndarray, max_len: int) -> np.ndarray:
    """Optimal code lengths of at most ``max_len`` bits (package-merge); 0 for unused symbols.

    A single used symbol gets length 1 (a code must have at least one bit).
    """
    freqs = np.asarray(freqs, dtype=np.int64)
    lengths = np.zeros(len(freqs), dtype=np.int64)
    used = np.flatnonzero(freqs > 0)
    if len(used) == 1:
        lengths[used[0]] = 1
    if len(used) <= 1:
        return lengths
    if len(used) > 1 << max_len:
        raise ValueError(f"{len(used)} symbols cannot be coded in at most {max_len} bits")
    # Leaves sorted by (frequency, symbol). Each round lists the leaves and the packages (pairs of
    # neighbouring items of the previous list) by weight, a stable sort, so leaves come before
    # packages of equal weight. Only which entries are packages is kept per round.
    leaf_symbol = used[np.lexsort((used, freqs[used]))]
    leaf_weight = freqs[leaf_symbol]
    n = len(used)
    weight = leaf_weight
    package_flags = []
    for _ in range(max_len - 1):
        paired = len(weight) // 2 * 2
        weight = np.concatenate([leaf_weight, weight[0:paired:2] + weight[1:paired:2]])
        order = np.argsort(weight, kind="stable")
        weight = weight[order]
        package_flags.append(order >= n)
    # Walk back from the first 2n - 2 items of the last list: the items taken from a list are a
    # prefix; its leaves are the lightest leaves, each adding one bit to its symbol, and its p
    # packages are the first 2p items of the list before.
    taken = 2 * n - 2
    leaf_bits = np.zeros(n, dtype=np.int64)
    for is_package in reversed(package_flags):
        packages = int(is_package[:taken].sum())
        leaf_bits[: taken - packages] += 1
        taken = 2 * packages
    leaf_bits[:taken] += 1
    lengths[leaf_symbol] = leaf_bits
    return lengths


@dataclass(frozen=True)
class HuffmanTable:
    """A canonical code: ``counts[l]`` codes of length ``l`` (index 0 unused), ``symbols`` in
    canonical order, over an alphabet of ``num_symbols`` symbols."""

    num_symbols: int
    counts: tuple[int, ...]
    symbols: tuple[int, ...]

    @property
    def max_length(self) -> int:
        return len(self.counts) - 1

    @classmethod
    def from_lengths(cls, lengths: np.ndarray) -> "HuffmanTable":
        lengths = np.asarray(lengths, dtype=np.int64)
        max_len = max(1, int(lengths.max(initial=0)))
        counts = np.bincount(lengths, minlength=max_len + 1)
        counts[0] = 0
        order = np.lexsort((np.arange(len(lengths)), lengths))
        symbols = tuple(int(s) for s in order if lengths[s] > 0)
        return cls(len(lengths), tuple(int(c) for c in counts), symbols)

    def lengths(self) -> np.ndarray:
        out = np.zeros(self.num_symbols, dtype=np.int64)
        i = 0
        for length, count in enumerate(self.counts):
            for s in self.symbols[i : i + count]:
                out[s] = length
            i += count
        return out

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(code, length) per symbol; length 0 where a symbol has no code."""
        lengths = self.lengths()
        codes = np.zeros(self.num_symbols, dtype=np.uint64)
        code, i = 0, 0
        for length in range(1, self.max_length + 1):
            for s in self.symbols[i : i + self.counts[length]]:
                codes[s] = code
                code += 1
            i += self.counts[length]
            code <<= 1
        return codes, lengths

    def check(self) -> str | None:
        """None for a usable code, else why not (puff.c's over-subscribed / incomplete test).

        An incomplete code is allowed only when it has one symbol of length 1, or no symbol at
        all (a layer without coded positions); every other code must fill the code space exactly.
        """
        if len(set(self.symbols)) != len(self.symbols):
            return "Huffman table lists a symbol twice"
        if any(s >= self.num_symbols for s in self.symbols):
            return "Huffman table symbol outside the alphabet"
        left = 1
        for count in self.counts[1:]:
            left = 2 * left - count
            if left < 0:
                return "Huffman table is over-subscribed"
        if left > 0 and not (len(self.symbols) == 0 or (len(self.symbols) == 1 and self.counts[1] == 1)):
            return "Huffman table is incomplete"
        return None

    def write(self, writer: BitWriter) -> None:
        writer.write(self.num_symbols - 1, SYMBOL_BITS)
        writer.write(self.max_length, LENGTH_BITS)
        for count in self.counts[1:]:
            writer.write(count, COUNT_BITS)
        for s in self.symbols:
            writer.write(s, SYMBOL_BITS)

    @classmethod
    def read(cls, reader: BitReader, max_code_length: int = MAX_CODE_LENGTH) -> "HuffmanTable":
        """Read and check a table; codes longer than ``max_code_length`` (a decoder's limit) are refused."""
        num_symbols = reader.read(SYMBOL_BITS) + 1
        max_len = reader.read(LENGTH_BITS)
        if max_len == 0:
            raise reader.error("Huffman table has maximum code length 0")
        if max_len > max_code_length:
            raise reader.error(f"Huffman table has codes of {max_len} bits, longer than the decoder's limit of "
                               f"{max_code_length}")
        counts = [0] + [reader.read(COUNT_BITS) for _ in range(max_len)]
        total = sum(counts)
        if total > num_symbols:
            raise reader.error(f"Huffman table lists {total} codes for {num_symbols} symbols")
        symbols = tuple(reader.read(SYMBOL_BITS) for _ in range(total))
        table = cls(num_symbols, tuple(counts), symbols)
        problem = table.check()
        if problem:
            raise reader.error(problem)
        return table


class CanonicalHuffmanDecoder:
    """Stage 1: bits to distances.

    Decodes one position group with the group's table (see :func:`rice_context`): ``count``
    Huffman symbols, each followed by its extra bits. A symbol
    ``s`` below the escape symbol (``num_symbols - 1``) is the quotient of the distance by
    ``2**rice_k``, and ``rice_k`` raw bits follow with the remainder; the escape symbol is followed
    by the distance itself in ``bit_length(domain - 1)`` raw bits. Distances are ``gap - 1 >= 0``
    (see :class:`~sw_codec.distance.DistanceAccumulator`).
    """

    def __init__(self, tables: list[HuffmanTable]):
        self.tables = tables
        self._lookup: dict[int, tuple[list[int], list[int]]] = {}

    def lookup(self, index: int) -> tuple[list[int], list[int]]:
        """Table ``index`` as (symbol, length) per ``max_length``-bit window; length 0: no code.

        The same decoding as :meth:`decode_symbol`, precomputed (the software fast path; the
        hardware evaluates the per-length comparators instead).
        """
        if index not in self._lookup:
            table = self.tables[index]
            codes, lengths = table.codes()
            size = 1 << table.max_length
            symbol, length = [0] * size, [0] * size
            for s in np.flatnonzero(lengths):
                shift = table.max_length - int(lengths[s])
                start = int(codes[s]) << shift
                for w in range(start, start + (1 << shift)):
                    symbol[w], length[w] = int(s), int(lengths[s])
            self._lookup[index] = (symbol, length)
        return self._lookup[index]

    def decode_symbol(self, reader: BitReader, table: HuffmanTable) -> int:
        counts, symbols = table.counts, table.symbols
        max_len = len(counts) - 1
        window = reader.peek(max_len)
        code = first = index = 0
        for length in range(1, max_len + 1):
            code |= (window >> (max_len - length)) & 1
            count = counts[length]
            if code - count < first:
                reader.skip(length)
                return symbols[index + code - first]
            index += count
            first = (first + count) << 1
            code <<= 1
        raise reader.error("invalid Huffman code")

    def decode_distances(self, reader: BitReader, count: int, domain: int, rice_k: int, table: int) -> np.ndarray:
        escape_bits = int(bit_length(np.int64(domain - 1)))
        code = self.tables[table]
        escape = code.num_symbols - 1
        if not code.symbols:
            raise reader.error(f"group of {count} positions uses Huffman table {table}, which is empty")
        symbols, lengths = self.lookup(table)
        max_len = code.max_length
        out = [0] * count
        for i in range(count):
            window = reader.peek(max_len)
            length = lengths[window]
            if length == 0:
                raise reader.error("invalid Huffman code")
            reader.skip(length)
            s = symbols[window]
            out[i] = reader.read(escape_bits) if s == escape else (s << rice_k) | reader.read(rice_k)
        return np.array(out, dtype=np.int64)


def rice_context(domain, count, bias: int, num_tables: int):
    """Rice shift and code table of a group of ``count`` positions among ``domain`` slots.

    With ``k0 = floor(log2(domain / count))`` (``bit_length(domain) - bit_length(count)``, minus
    one when ``count << k0`` exceeds ``domain``) the mean distance lies in
    ``[2**k0, 2**(k0+1))``. The shift is ``max(0, k0 - bias)``, so quotients sit near
    ``2**bias``; the table is the fraction of that octave, ``r = domain / (count << k0)`` in
    ``[1, 2)``, cut into ``num_tables`` equal parts: table ``t`` when
    ``1 + t/T <= r < 1 + (t+1)/T``. Hardware (``hw.block_parser.RiceContext``) computes both
    in one cycle per group, with every comparison of ``count`` times a constant, shifted by
    each candidate ``k0``, against ``domain`` made side by side.
    Works element-wise on arrays and on scalars.
    """
    domain = np.asarray(domain, dtype=np.int64)
    count = np.asarray(count, dtype=np.int64)
    k0 = np.maximum(bit_length(domain) - bit_length(count), 0)
    k0 = np.where((count << k0) > domain, k0 - 1, k0)
    k0 = np.maximum(k0, 0)
    x = count << k0
    table = np.zeros(np.shape(domain), dtype=np.int64)
    for t in range(1, num_tables):
        table += num_tables * domain >= (num_tables + t) * x
    return np.maximum(0, k0 - bias), table
