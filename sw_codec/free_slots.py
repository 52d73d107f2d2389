"""Stage 2, as decoder v2 builds it: member indices to positions by a descent through a tree of
free counts (the software twin of ``hw.free_slot_scanner.FreeSlotScanner``).

Same mapping as :class:`sw_codec.distance.DistanceAccumulator` (docs/FORMAT.md, "Positions"),
computed the way the hardware does it:

- **Live claims, relative ranks.** Every member claims its slot at once. A group's members lie
  in increasing position, so when its ``j``-th member (from 1) is placed, the group's ``j - 1``
  earlier members all lie before it; the ``i_j``-th slot of the group's domain (the slots free
  when the group started) is therefore the ``(i_j - (j - 1))``-th slot still free now. With
  distances, that *rank* is just the running sum of the group's distances. Nothing is kept per
  group but the rank, so a new group costs nothing.
- **A tree of free counts.** The block's ``2**P`` slots are the leaves of a tree
  (:func:`tree_digits`): a bottom row holds the claim bits of ``2**bottom_bits`` slots (4 by
  default); each level above groups ``2**inner_bits`` nodes of the level below (2 by default;
  the top node the remaining ones). A node's row holds, for each child
  after the first, the free slots in the children before it (``below``), and a ``touched`` bit
  per child. A rank descends one level per step: the child is the last one whose ``below`` is at
  most the rank, and the rank loses that ``below``. With ``all`` counting the child is the
  position's digit instead (the bottom checks that the slot is free).
- **No clearing pass.** A child the parent has not ``touched`` in this block reads as all free,
  whatever its row holds, so a new block only resets the top row.

Errors (:class:`~sw_codec.errors.FormatError`): framing (``MEMBER`` or ``END`` outside a block,
``BLOCK`` inside one, a block size not in ``1..2**P``, a block's first member without
``first``), an index outside the group's domain (with ``free``, past the slots earlier groups
left; with ``all``, at or past ``n``), indices of a group that do not increase, and with ``all``
a slot claimed twice.

The cycle model (:meth:`FreeSlotScanner.cycles`) is the hardware's schedule: one token per cycle
in, every token passing ``2 * levels`` registers (the top level's, two for each level below it:
its row's read, then the descent; the output register), a cycle per stall of either stream.
"""

from __future__ import annotations

from .errors import FormatError
from .format import SLOTS

__all__ = ["FreeSlotScanner", "tree_digits"]

def tree_digits(block_bits: int, inner_bits: int = 1, bottom_bits: int = 2) -> list[int]:
    """Bits of the child index at each level, top first: the bottom level takes ``bottom_bits``
    (its rows are the claim bits of ``2**bottom_bits`` slots), the levels above it
    ``inner_bits`` each (``2**inner_bits`` children), the top the remainder."""
    above = block_bits - bottom_bits
    inner = [inner_bits] * (above // inner_bits)
    if above % inner_bits:
        inner.insert(0, above % inner_bits)
    return inner + [bottom_bits]


class FreeSlotScanner:
    """Maps a stage-trace member stream (``trace.members`` tuples) to its write stream.

    ``run(tokens)`` returns the write tokens (``("BLOCK", implicit, n)``, ``("MEMBER", value,
    position)``, ``("END",)``) and raises :class:`FormatError` at the first malformed token.
    ``rows`` holds the tree as the hardware's memories do: ``rows[k][node]`` is a dict with
    ``below`` (list) and ``touched`` (list of bools) for the inner levels, and the list of claim
    bits for the bottom level; stale rows (untouched in this block) are left as they were.
    """

    def __init__(self, block_bits: int, slots: str, inner_bits: int = 1, bottom_bits: int = 2):
        if slots not in SLOTS:
            raise ValueError(f"slots must be one of {SLOTS}, not {slots!r}")
        self.block_bits = block_bits
        self.slots = slots
        self.digits = tree_digits(block_bits, inner_bits, bottom_bits)
        self.levels = len(self.digits)
        # capacity (slots) of one child at level k
        self.child_slots = [1 << (block_bits - sum(self.digits[:k + 1])) for k in range(self.levels)]
        self.rows = [{} for _ in range(self.levels)]
        self.in_block = False

    # -- the tree -------------------------------------------------------------------------------
    def _fresh_row(self, k: int):
        fanout = 1 << self.digits[k]
        if k == self.levels - 1:
            return [False] * fanout
        return {"below": [c * self.child_slots[k] for c in range(fanout)], "touched": [False] * fanout}

    def _place(self, rank: int) -> int:
        """Descend with ``rank`` (free counting) or a position (all counting); claim the slot."""
        node, row, fresh = 0, self.rows[0][0], False
        for k in range(self.levels):
            row = self.rows[k].get(node) if not fresh else None
            if row is None or fresh:
                row = self.rows[k][node] = self._fresh_row(k)
            shift = self.block_bits - sum(self.digits[:k + 1])
            if k == self.levels - 1:
                if self.slots == "all":
                    child = rank
                    if row[child]:
                        raise FormatError("two values claim the same position")
                else:
                    child = [c for c, claimed in enumerate(row) if not claimed][rank]
                row[child] = True
                return (node << self.digits[k]) | child
            if self.slots == "all":
                child, rank = rank >> shift, rank & ((1 << shift) - 1)
            else:
                child = max(c for c, below in enumerate(row["below"]) if below <= rank)
                rank -= row["below"][child]
            for c in range(child + 1, len(row["below"])):
                row["below"][c] -= 1
            fresh = not row["touched"][child]
            row["touched"][child] = True
            node = (node << self.digits[k]) | child
        raise AssertionError("unreachable")

    # -- the token stream -----------------------------------------------------------------------
    def run(self, tokens) -> list:
        writes = []
        for token in tokens:
            kind = token[0]
            if kind == "BLOCK":
                _, implicit, n = token
                if self.in_block:
                    raise FormatError("BLOCK inside a block")
                if not 1 <= n <= 1 << self.block_bits:
                    raise FormatError(f"block size {n} not in 1..{1 << self.block_bits}")
                self.in_block, self.n, self.free = True, n, n
                self.rows[0][0] = self._fresh_row(0)
                self.group_start = True      # the next member must open a group
                writes.append(("BLOCK", implicit, n))
            elif kind == "END":
                if not self.in_block:
                    raise FormatError("END outside a block")
                self.in_block = False
                writes.append(("END",))
            elif kind == "MEMBER":
                _, value, index, first, absolute = token
                if not self.in_block:
                    raise FormatError("MEMBER outside a block")
                if self.group_start and not first:
                    raise FormatError("a block's first member does not open a group")
                self.group_start = False
                if first:
                    self.previous, self.earlier = -1, 0
                    self.domain = self.free if self.slots == "free" else self.n
                index = index if absolute else self.previous + index + 1
                if index <= self.previous:
                    raise FormatError("group indices not increasing")
                if index >= self.domain:
                    raise FormatError(f"group index {index} outside its domain of {self.domain} slots")
                rank = index - self.earlier if self.slots == "free" else index
                writes.append(("MEMBER", value, self._place(rank)))
                self.previous, self.earlier, self.free = index, self.earlier + 1, self.free - 1
            else:
                raise FormatError(f"unknown token kind {kind!r}")
        return writes

    def cycles(self, tokens, *, input_gaps: int = 0, output_stalls: int = 0) -> int:
        """Cycles from the first token offered to the last write taken: the hardware takes one
        token per cycle, a token leaves ``latency`` cycles after it is taken, and each cycle
        with no token offered (``input_gaps``) or the output not taken (``output_stalls``)
        adds one."""
        return len(tokens) + self.latency + input_gaps + output_stalls

    @property
    def latency(self) -> int:
        """Clock edges from a token taken to its write on the output: the input register, two
        per level below the top (the row read, the descent), the output register."""
        return 2 * self.levels
