"""Stage 3: (value, positions) to weight writes."""

from __future__ import annotations

import numpy as np


class RepeatExpander:
    """Writes each group's value at its positions into a block buffer; restarts at every block.

    ``write(value, positions)`` is one group: a write per position, as the hardware's write
    stream carries them (``StageTrace.writes``). ``finish(implicit)`` reads the buffer out in
    order, with the block's implicit value (the one stored without positions) in every slot no
    group wrote.
    """

    def __init__(self, block_size: int):
        self.buffer = np.zeros(block_size, dtype=np.int64)
        self.written = np.zeros(block_size, dtype=bool)

    def write(self, value: int, positions: np.ndarray) -> None:
        self.buffer[positions] = value
        self.written[positions] = True

    def finish(self, implicit: int) -> np.ndarray:
        return np.where(self.written, self.buffer, implicit)
