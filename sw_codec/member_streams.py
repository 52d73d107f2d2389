"""Block format 2's member section: a block's member fields in four interleaved bit streams.

A *member field* is a Huffman code of ``l`` bits (``1 <= l <= 16``) followed by ``e`` extra bits
(``0 <= e <= 16``): the Rice remainder, or an escaped distance. Field ``t`` of a block
(``t = 0 .. C-1``, in block order) belongs to stream ``s = t mod 4``; a stream is the
concatenation of its fields' bits, most significant bit first. The section stores the streams as
16-bit words (two bytes each, big-endian, the first stream bit in bit 15), and the order of the
words is the order in which this reference decoder pulls them::

    for t in 0 .. C-1:
        s = t mod 4
        if bits(s) < need(t): append the next word to stream s's buffer     # symbol pull of t
        decode a code from the buffer's first bits; drop its l bits
        if t > 0:
            s' = (t-1) mod 4
            if bits(s') < e(t-1): append the next word to stream s'         # extra pull of t-1
            take the next e(t-1) bits of stream s'
    then (C > 0), with s' = (C-1) mod 4:
        if bits(s') < e(C-1): append the next word to stream s'             # extra pull of C-1
        take the next e(C-1) bits of stream s'

The extra pull of field ``t`` comes after the symbol pull of field ``t+1``: a stream still sees
its own operations in the same order (symbol pull, code, extra pull, extra bits of ``t``, then
those of ``t+4``), only the words of different streams interleave differently. (The deferral
gives a hardware decoder a cycle between looking up field ``t``'s code, which gives ``e(t)``,
and the extra pull that depends on it, so the symbol pull of ``t+1`` never waits for it.)

``need(t)`` is the longest code length of the field's table (``HuffmanTable.max_length``). Each
pull adds 16 bits and every field needs at most 16 before each pull, so one word is always
enough and a buffer never holds more than 31 bits. A pull past the section's last word gives a
zero word (the encoder drops the zero words at a section's end). After the last field, the bits
left in the four buffers must be zero and every word of the section must have been pulled.

Why this order: every pull depends only on its own stream's fields, so a decoder that keeps one
stream per pipeline stage (a ring of four) knows when to pull without waiting for the other
streams, and the words arrive in the order it asks for them (Giesen, "Interleaved entropy
coders", 2014): no offsets per stream, only each stream's last partial word of padding. Pulling
``need(t)`` bits ahead of the code (rather than exactly the code's length) wastes at most
``need - l`` bits per stream and block, and lets the decoder pull before it looks the code up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bits import place_fields
from .errors import FormatError
from .format import MEMBER_STREAMS, MEMBER_WORD_BITS

__all__ = ["MemberFields", "interleave", "decode_member_streams", "Pull"]

_MAX_FIELD_PART = MEMBER_WORD_BITS       # a code, an extra field and a need are at most one word


@dataclass(frozen=True)
class MemberFields:
    """The member fields of one or more blocks, one entry per field, in block order.

    ``code``/``code_bits``: the Huffman code and its length; ``extra``/``extra_bits``: the extra
    field; ``need``: the longest code length of the field's table; ``block``: the block of each
    field (non-decreasing; fields of a block are numbered from 0 in their block).
    """

    code: np.ndarray
    code_bits: np.ndarray
    extra: np.ndarray
    extra_bits: np.ndarray
    need: np.ndarray
    block: np.ndarray

    @classmethod
    def of(cls, code, code_bits, extra, extra_bits, need, block=None) -> "MemberFields":
        arrays = [np.asarray(a, dtype=np.int64).ravel() for a in (code, code_bits, extra, extra_bits, need)]
        n = len(arrays[0])
        if any(len(a) != n for a in arrays):
            raise ValueError("member field arrays must have one entry per field")
        block = np.zeros(n, dtype=np.int64) if block is None else np.asarray(block, dtype=np.int64).ravel()
        if len(block) != n or (n and (np.diff(block) < 0).any()):
            raise ValueError("block must give each field's block, in non-decreasing order")
        code, code_bits, extra, extra_bits, need = arrays
        for name, a, lo in (("code_bits", code_bits, 1), ("extra_bits", extra_bits, 0), ("need", need, 1)):
            if n and (a.min() < lo or a.max() > _MAX_FIELD_PART):
                raise ValueError(f"{name} must be in {lo}..{_MAX_FIELD_PART}")
        if n and (code_bits > need).any():
            raise ValueError("a code is longer than its table's longest code (need)")
        if n and ((code >> code_bits) != 0).any() or n and ((extra >> extra_bits) != 0).any():
            raise ValueError("a code or extra field has more bits than its length")
        return cls(code, code_bits, extra, extra_bits, need, block)

    def __len__(self) -> int:
        return len(self.code)


def interleave(fields: MemberFields, num_blocks: int | None = None) -> tuple[list[bytes], np.ndarray]:
    """The member section of each block: its words in pull order, as bytes, and the number of
    words of each section. ``num_blocks`` (default: the last field's block + 1) gives blocks
    without fields an empty section.

    Vectorized: a stream's pulls depend only on its own fields, so the number of words a stream
    has pulled after each pull point is the running maximum of ``ceil(required bits / 16)``; the
    pulls of all streams are then sorted by block, then by time: the symbol pull of field ``t`` (in
    its block) at ``2t``, its extra pull at ``2t + 3`` (after the symbol pull of ``t + 1``).
    """
    n = len(fields)
    if num_blocks is None:
        num_blocks = int(fields.block[-1]) + 1 if n else 0
    if n and fields.block[-1] >= num_blocks:
        raise ValueError("a field's block is past num_blocks")
    if n == 0:
        return [b""] * num_blocks, np.zeros(num_blocks, dtype=np.int64)
    W = MEMBER_WORD_BITS
    block_start = np.searchsorted(fields.block, np.arange(num_blocks))
    t = np.arange(n) - block_start[fields.block]                 # field number in its block
    key = fields.block * MEMBER_STREAMS + t % MEMBER_STREAMS      # one bit string per (block, stream)
    # The fields of each string, in order (fields come in block order, so a stable sort by key keeps
    # each string's fields in field order).
    order = np.argsort(key, kind="stable")
    ks = key[order]
    first = np.r_[True, ks[1:] != ks[:-1]]
    string = np.cumsum(first) - 1                                # string number of each ordered field
    length = (fields.code_bits + fields.extra_bits)[order]
    cum = np.cumsum(length) - length
    before = cum - cum[np.flatnonzero(first)][string]            # bits of the string before the field
    # Two pull points per field: the bits the string's buffer must have reached by then.
    required = np.empty(2 * n, dtype=np.int64)
    np.add(before, fields.need[order], out=required[0::2])
    np.add(before, length, out=required[1::2])
    words_after = -(-required // W)
    point_string = np.repeat(string, 2)
    offset = point_string * (int(words_after.max()) + 1)         # keeps the running maxima apart
    running = np.maximum.accumulate(words_after + offset) - offset
    prev = np.r_[0, running[:-1]]
    prev[np.repeat(first, 2) & (np.arange(2 * n) % 2 == 0)] = 0   # a string starts with no words
    pulled = running - prev
    assert pulled.min() >= 0 and pulled.max() <= 1, "one pull per point (parts of at most 16 bits)"
    at = np.flatnonzero(pulled)
    pull_field = order[at // 2]
    pull_word = running[at] - 1                                  # the word's index in its string
    pull_point = at % 2
    time = 2 * t[pull_field] + 3 * pull_point                    # symbol pull 2t, extra pull 2t + 3
    by_time = np.lexsort((time, fields.block[pull_field]))       # by block, then by time (no ties)
    pull_field, pull_string, pull_word = pull_field[by_time], point_string[at][by_time], pull_word[by_time]
    # Every string packed into whole words, strings back to back in string order.
    string_bits = np.bincount(string, weights=length).astype(np.int64)
    pad = -string_bits % W
    string_word0 = np.r_[0, np.cumsum((string_bits + pad) // W)[:-1]]
    total_words = int(((string_bits + pad) // W).sum())
    # Each field (its code, then its extra bits: at most 32 bits) at its place; padding stays zero.
    stream64 = np.zeros(total_words * W // 64 + 2, dtype=np.uint64)
    field_value = (fields.code[order] << fields.extra_bits[order]) | fields.extra[order]
    place_fields(stream64, W * string_word0[string] + before, field_value, length)
    packed = np.frombuffer(stream64.astype(">u8").tobytes(), dtype=">u2")[:total_words]
    # A pull past a string's last word (need(t) ahead of a short last field) gets a zero word.
    has_data = pull_word < ((string_bits + pad) // W)[pull_string]
    section_words = np.where(has_data, packed[np.minimum(string_word0[pull_string] + pull_word, len(packed) - 1)], 0)
    bounds = np.searchsorted(fields.block[pull_field], np.arange(num_blocks + 1))
    sections, words_per_block = [], np.zeros(num_blocks, dtype=np.int64)
    for b in range(num_blocks):
        words = section_words[bounds[b]:bounds[b + 1]]
        nonzero = np.flatnonzero(words)
        words = words[: nonzero[-1] + 1 if len(nonzero) else 0]   # trailing zero words are implicit
        words_per_block[b] = len(words)
        sections.append(words.astype(">u2").tobytes())
    return sections, words_per_block


@dataclass(frozen=True)
class Pull:
    """One word pulled by the reference decoder: the word's index in the section, the field and
    the point (0 symbol pull, 1 extra pull) that pulled it, and the stream it went to."""

    word: int
    field: int
    point: int
    stream: int


def decode_member_streams(section: bytes, lookup, fields_context, trace: list | None = None):
    """Decode a block's member section: the reference decoder of the module docstring.

    ``lookup(field, window) -> (symbol, code_bits)`` decodes the code at the start of a 16-bit
    window for field ``field`` (``code_bits == 0``: no code); ``fields_context`` is a sequence of
    ``(need, extra_bits_of(symbol))`` per field, where ``extra_bits_of`` maps the decoded symbol to
    the number of extra bits. Returns the list of ``(symbol, extra)`` per field; with ``trace`` a
    list, appends a :class:`Pull` per word pulled. ``FormatError`` for a code that is none, words
    left over, or non-zero padding.
    """
    if len(section) % 2:
        raise FormatError("member section of an odd number of bytes")
    words = np.frombuffer(section, dtype=">u2").astype(np.int64)
    W = MEMBER_WORD_BITS
    buf = [0] * MEMBER_STREAMS
    nbits = [0] * MEMBER_STREAMS
    next_word = 0
    out = []

    def pull(s: int, t: int, point: int) -> None:
        nonlocal next_word
        word = int(words[next_word]) if next_word < len(words) else 0
        if trace is not None:
            trace.append(Pull(next_word, t, point, s))
        next_word += 1
        buf[s] = (buf[s] << W) | word
        nbits[s] += W

    def take(s: int, n: int) -> int:
        nbits[s] -= n
        value = buf[s] >> nbits[s]
        buf[s] &= (1 << nbits[s]) - 1
        return value

    def extras(t: int, e: int) -> None:              # the extra pull and extra bits of field t
        s = t % MEMBER_STREAMS
        if nbits[s] < e:
            pull(s, t, 1)
        out[t] = (out[t][0], take(s, e))

    pending = None                                   # (field, extra bits) whose extras come next
    for t, (need, extra_bits_of) in enumerate(fields_context):
        s = t % MEMBER_STREAMS
        if nbits[s] < need:
            pull(s, t, 0)
        window = (buf[s] << W >> nbits[s]) & ((1 << W) - 1)      # the next 16 bits, zero-filled
        symbol, code_bits = lookup(t, window)
        if code_bits == 0 or code_bits > nbits[s]:
            raise FormatError(f"member field {t}: invalid Huffman code")
        take(s, code_bits)
        out.append((symbol, 0))
        if pending is not None:
            extras(*pending)
        pending = (t, extra_bits_of(symbol))
    if pending is not None:
        extras(*pending)
    if next_word < len(words):
        raise FormatError(f"member section has {len(words) - next_word} words after its last field")
    if any(buf):
        raise FormatError("member section padding bits are not zero")
    return out
