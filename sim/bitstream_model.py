"""Software model of the hardware bit reader's view of memory.

The stream is a byte string. Memory words hold bytes at increasing addresses in increasing
significance (little-endian); bits are read MSB first within each byte. These helpers are the
expectation the ``hw.bit_reader.BitReader`` tests compare against; they know nothing of timing.
"""

__all__ = ["bytes_to_words", "stream_bits", "BitReaderModel"]


def bytes_to_words(data, word_bits):
    """Pack ``data`` into little-endian ``word_bits``-bit words, zero-padding the last word."""
    if word_bits % 8:
        raise ValueError(f"word_bits must be a multiple of 8, not {word_bits!r}")
    step = word_bits // 8
    padded = bytes(data) + bytes(-len(data) % step)
    return [int.from_bytes(padded[n:n + step], "little") for n in range(0, len(padded), step)]


def stream_bits(data):
    """The bits of ``data`` in stream order (MSB first within each byte), as a list of 0/1."""
    return [(byte >> (7 - k)) & 1 for byte in data for k in range(8)]


class BitReaderModel:
    """Expected window contents of a bit reader over ``data`` (already padded to whole words).

    ``pos`` is the number of bits consumed so far. ``window(count, width)`` returns what the
    hardware must show when ``count`` bits are valid: the next ``count`` bits MSB-first in a
    ``width``-bit value, zeros below.
    """

    def __init__(self, data):
        self.bits = stream_bits(data)
        self.pos = 0

    @property
    def remaining(self):
        return len(self.bits) - self.pos

    def peek(self, n):
        value = 0
        for bit in self.bits[self.pos:self.pos + n]:
            value = (value << 1) | bit
        return value

    def window(self, count, width):
        return self.peek(count) << (width - count)

    def consume(self, n):
        if n > self.remaining:
            raise ValueError(f"consume of {n} bits with only {self.remaining} left")
        self.pos += n

    def align(self):
        self.pos += -self.pos % 8
