"""Stage 2: distances to positions."""

from __future__ import annotations

import numpy as np

from .bits import BitReader
from .format import SLOTS


class DistanceAccumulator:
    """Turns each group's distances into in-block positions; restarts at every block.

    A group is the list of positions of one value in a block, in increasing order. Its positions
    are coded as indices ``i_1 < i_2 < ...`` into a *domain* of slots, and each index as the
    distance ``d_j = i_j - i_{j-1} - 1 >= 0`` (with ``i_0 = -1``), so the first distance is the
    first index itself.

    - ``slots="all"``: the domain is every slot of the block (``n`` of them); the index is the
      position.
    - ``slots="free"``: the domain is the slots that no earlier group of this block has taken, in
      position order; index ``i`` is the ``i``-th such free slot. The domain shrinks by each
      group's count, which is what saves about log2(e) bits per weight against ``all``.

    Errors (a :class:`FormatError` at the reader's offset): an index outside the domain, and a
    position a previous group already wrote (possible only with ``all``).
    """

    def __init__(self, block_size: int, slots: str):
        if slots not in SLOTS:
            raise ValueError(f"slots must be one of {SLOTS}, not {slots!r}")
        self.block_size = block_size
        self.slots = slots
        self.taken = np.zeros(block_size, dtype=bool)
        self.free = block_size

    @property
    def domain(self) -> int:
        """Number of slots the next group's indices count."""
        return self.block_size if self.slots == "all" else self.free

    def positions(self, reader: BitReader, distances: np.ndarray) -> np.ndarray:
        return self.place(reader, np.cumsum(np.asarray(distances, dtype=np.int64) + 1) - 1)

    def place(self, reader: BitReader, indices: np.ndarray) -> np.ndarray:
        """Positions of a group given directly as increasing domain indices (mode ``repeat``)."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices[-1] >= self.domain or np.any(np.diff(indices) <= 0)):
            raise reader.error(
                f"group index {int(indices.max())} outside its domain of {self.domain} slots"
                if indices.max() >= self.domain else "group indices not increasing"
            )
        if self.slots == "free":
            positions = np.flatnonzero(~self.taken)[indices]
        else:
            positions = indices
            if np.any(self.taken[positions]):
                raise reader.error("two values claim the same position")
        self.taken[positions] = True
        self.free -= len(positions)
        return positions
