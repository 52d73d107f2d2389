"""The ``.pcz`` format in one place: field widths, limits and codes (docs/FORMAT.md).

The reference codec (``sw_codec``), the hardware (``hw``) and the testbenches (``sim``) take
every field width, limit and code from here, so that no copy can disagree with another. This
module imports nothing of the project (and nothing outside the standard library), so ``hw``
can depend on it without depending on the codec.

Names and codes: modes, slot countings and the rest are strings in the codec's API
(``"huffman"``, ``"free"``) and small integers on the wire and on the hardware's ports. Each
enum below gives both: ``Mode.HUFFMAN.label == "huffman"``, ``Mode.of("huffman") == 3``.
"""

from __future__ import annotations

import enum
import struct

__all__ = [
    "Mode", "Slots", "TokenKind", "LayerMode", "Granularity",
    "MODES", "POSITION_MODES", "SLOTS", "WEIGHT_BITS", "MIN_WEIGHT_BITS", "MAX_WEIGHT_BITS",
    "MIN_BLOCK_BITS", "MAX_BLOCK_BITS",
    "COUNT_K_BITS", "RICE_BIAS_BITS", "TABLES_LOG2_BITS", "MAX_TABLES", "NUM_TABLES_CHOICES",
    "MAX_SYMBOLS", "SYMBOL_BITS", "LENGTH_BITS", "COUNT_BITS", "MAX_CODE_LENGTH",
    "DISTANCE_WIDTH_BITS", "MAX_EXP_GOLOMB_PREFIX", "BLOCK_OFFSET_BYTES",
    "MEMBER_STREAMS", "MEMBER_WORD_BITS", "V2_MAX_CODE_LENGTH", "BLOCK_FORMATS", "check_block_format",
    "BLOCK_LENGTH_WIDTH_BITS",
    "MAGIC", "VERSION", "HEADER", "MAX_LAYERS", "MAX_NDIM", "MAX_WEIGHTS", "check_params",
    "VERSIONS", "HEADER_V2", "MAX_NAME_BYTES", "MAX_VARINT_BYTES", "MAX_INFLATE_RATIO",
    "MIN_DIRECTORY_BYTES_PER_LAYER", "BLOCK_FORMAT_OF_VERSION", "block_format_of",
]


class _Code(enum.IntEnum):
    """An integer code with a lower-case name (``label``) used in the codec's API and files."""

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def of(cls, label: str) -> "_Code":
        """The member named ``label`` (case-insensitive); ``ValueError`` naming the choices."""
        try:
            return cls[str(label).upper()]
        except KeyError:
            raise ValueError(f"unknown {cls.__name__.lower()} {label!r}; one of "
                             f"{', '.join(m.label for m in cls)}") from None


# ---- Layer payloads --------------------------------------------------------------------------

class Mode(_Code):
    """How a layer payload codes its integers; the code is the hardware's ``mode`` port value."""

    RAW      = 0
    REPEAT   = 1
    DISTANCE = 2
    HUFFMAN  = 3


class Slots(_Code):
    """How positions are counted in a block (the hardware's ``slots`` port, the container's field)."""

    ALL  = 0
    FREE = 1


class TokenKind(_Code):
    """The kind field of the tokens between decoder stages (``hw/tokens.py``, ``sw_codec.decoder.StageTrace``).

    A block on a stage boundary is ``BLOCK``, zero or more ``MEMBER`` tokens, then ``END``.
    """

    BLOCK  = 0
    MEMBER = 1
    END    = 2


#: Mode names, in code order, and those that code positions.
MODES = tuple(m.label for m in Mode)
POSITION_MODES = tuple(m.label for m in Mode if m is not Mode.RAW)
SLOTS = tuple(s.label for s in Slots)

#: Integer widths a layer may use (every width from 2 to 16 bits), and the block sizes ``2**P``
#: (``P`` the block bits).
MIN_WEIGHT_BITS, MAX_WEIGHT_BITS = 2, 16
WEIGHT_BITS = tuple(range(MIN_WEIGHT_BITS, MAX_WEIGHT_BITS + 1))
MIN_BLOCK_BITS, MAX_BLOCK_BITS = 4, 16

#: Preamble fields: the count order offset, the Rice bias and log2 of the number of tables.
COUNT_K_BITS = 4
RICE_BIAS_BITS = 4
TABLES_LOG2_BITS = 2
#: A layer has ``2**t`` Huffman tables, ``t`` in ``0 .. 2**TABLES_LOG2_BITS - 1``.
NUM_TABLES_CHOICES = tuple(1 << t for t in range(1 << TABLES_LOG2_BITS))
MAX_TABLES = NUM_TABLES_CHOICES[-1]

#: A stored Huffman table: the alphabet size - 1 in ``SYMBOL_BITS``, the longest code length in
#: ``LENGTH_BITS``, a ``COUNT_BITS`` count per length, a ``SYMBOL_BITS`` field per symbol.
SYMBOL_BITS = 6
MAX_SYMBOLS = 1 << SYMBOL_BITS
LENGTH_BITS = 4
COUNT_BITS = 7
MAX_CODE_LENGTH = (1 << LENGTH_BITS) - 1

#: The distance mode's per-group width field.
DISTANCE_WIDTH_BITS = 5
#: The longest Exp-Golomb prefix (leading zeros) a decoder accepts; longer means corrupt input.
MAX_EXP_GOLOMB_PREFIX = 32
#: Each block's entry in a position payload's block offset table (little-endian).
BLOCK_OFFSET_BYTES = 4

#: Block format 2 (huffman mode): a block's member fields are dealt round-robin into
#: ``MEMBER_STREAMS`` bit streams, interleaved in words of ``MEMBER_WORD_BITS`` bits in the order
#: the reference decoder pulls them (``sw_codec.member_streams``); codes are at most
#: ``V2_MAX_CODE_LENGTH`` bits.
MEMBER_STREAMS = 4
MEMBER_WORD_BITS = 16
V2_MAX_CODE_LENGTH = 11
#: Block format 2 replaces the block offset table by a block length table: a width field of this
#: many bits, then each block's length in ``MEMBER_WORD_BITS``-bit words in that width.
BLOCK_LENGTH_WIDTH_BITS = 5
#: Block formats of a huffman-mode payload: 1 (fields in one bit stream) and 2 (a header section,
#: then the member section). Raw, repeat and distance payloads are the same in both.
BLOCK_FORMATS = (1, 2)


def check_block_format(block_format: int) -> None:
    """``ValueError`` unless ``block_format`` is one of :data:`BLOCK_FORMATS`."""
    if block_format not in BLOCK_FORMATS:
        raise ValueError(f"block_format must be one of {BLOCK_FORMATS}, not {block_format!r}")


def check_params(bits: int, block_bits: int) -> None:
    """``ValueError`` unless ``bits`` is a weight width and ``block_bits`` a block size exponent
    of the format."""
    if bits not in WEIGHT_BITS:
        raise ValueError(f"bits must be in {MIN_WEIGHT_BITS}..{MAX_WEIGHT_BITS}, not {bits!r}")
    if not MIN_BLOCK_BITS <= block_bits <= MAX_BLOCK_BITS:
        raise ValueError(f"block_bits must be in {MIN_BLOCK_BITS}..{MAX_BLOCK_BITS}, not {block_bits}")


# ---- The container ---------------------------------------------------------------------------

MAGIC = b"\x89PCZ"
#: The container versions a reader reads, and the one the writer writes unless told otherwise.
VERSIONS = (1, 2)
VERSION = 2
#: Version 1's header: magic, version, flags, layer count, table bytes (little-endian).
HEADER = struct.Struct("<4sHHII")
#: Version 2's header: magic, version, flags, layer count, stored (deflated) directory bytes,
#: directory bytes once inflated (little-endian).
HEADER_V2 = struct.Struct("<4sHHIII")
MAX_LAYERS = 1 << 20
MAX_NDIM = 8
MAX_WEIGHTS = 1 << 40
#: A layer name is at most this many bytes of UTF-8.
MAX_NAME_BYTES = (1 << 16) - 1
#: Version 2's LEB128 varints: at most this many bytes (values below 2**63), no redundant last byte.
MAX_VARINT_BYTES = 9
#: Version 2: a directory inflates to at most this many bytes per stored byte (DEFLATE's own bound),
#: and takes at least this many inflated bytes per layer (two name varints, a mode byte, ndim, CRC).
MAX_INFLATE_RATIO = 1032
MIN_DIRECTORY_BYTES_PER_LAYER = 8
#: The payload block format of each container version: huffman payloads of version-2 files are in
#: block format 2; every other payload is the same in both.
BLOCK_FORMAT_OF_VERSION = {1: 1, 2: 2}


def block_format_of(version: int) -> int:
    """The payload block format of a container ``version``; ``ValueError`` naming the versions."""
    try:
        return BLOCK_FORMAT_OF_VERSION[version]
    except (KeyError, TypeError):
        raise ValueError(f"container version must be one of {VERSIONS}, not {version!r}") from None


class LayerMode(_Code):
    """A layer record's mode field. Not the hardware's :class:`Mode` code: the container has
    ``float32`` layers too, at code 0, and numbers the integer modes from 1."""

    FLOAT32  = 0
    RAW      = 1
    REPEAT   = 2
    DISTANCE = 3
    HUFFMAN  = 4


class Granularity(_Code):
    """A layer record's scale granularity: ``none`` for float32 layers."""

    NONE    = 0
    TENSOR  = 1
    CHANNEL = 2
