"""Elaboration parameters of a decoder lane, and the checks the stages share.

:class:`LaneParams` is the one description of a lane's parameters: the CLI builds it from its
options, ``sim`` builds the RTL it simulates from it, ``synth`` names and builds its designs
from it. :class:`DecoderParams` adds the number of lanes of a ``DecoderTop``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from sw_codec.format import (MAX_BLOCK_BITS, MAX_CODE_LENGTH, MAX_WEIGHT_BITS, MIN_BLOCK_BITS, MIN_WEIGHT_BITS,
                             NUM_TABLES_CHOICES, WEIGHT_BITS)

__all__ = ["LaneParams", "DecoderParams", "check_weight_bits", "check_block_bits", "check_int_range"]

#: Memory word widths the bit reader takes.
WORD_BITS_CHOICES = (32, 64, 128)
MAX_LANES = 64


def check_int_range(name: str, value, lo: int, hi: int) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is an integer in ``lo..hi``."""
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")


def check_weight_bits(weight_bits) -> None:
    """``ValueError`` unless ``weight_bits`` is a width the format has (``WEIGHT_BITS``: 2..16)."""
    if isinstance(weight_bits, bool) or weight_bits not in WEIGHT_BITS:
        raise ValueError(f"weight_bits must be an integer in {MIN_WEIGHT_BITS}..{MAX_WEIGHT_BITS}, not {weight_bits!r}")


def check_block_bits(block_bits) -> None:
    """``ValueError`` unless ``block_bits`` is a block size exponent the format has."""
    check_int_range("block_bits", block_bits, MIN_BLOCK_BITS, MAX_BLOCK_BITS)


@dataclass(frozen=True)
class LaneParams:
    """The parameters of one decoder lane, ``hw.layer_decoder.LayerDecoder``'s.

    Checked at construction (``ValueError`` naming the parameter); see ``LayerDecoder`` for what
    each means.
    """

    weight_bits: int = 8
    block_bits: int = 14
    word_bits: int = 32
    max_code_len: int = MAX_CODE_LENGTH
    num_tables: int = 4
    scan_bits: int = 256

    def __post_init__(self):
        check_weight_bits(self.weight_bits)
        check_block_bits(self.block_bits)
        if self.word_bits not in WORD_BITS_CHOICES:
            raise ValueError(f"word_bits must be one of {WORD_BITS_CHOICES}, not {self.word_bits!r}")
        check_int_range("max_code_len", self.max_code_len, 1, MAX_CODE_LENGTH)
        if self.num_tables not in NUM_TABLES_CHOICES:
            raise ValueError(f"num_tables must be one of {NUM_TABLES_CHOICES}, not {self.num_tables!r}")
        if (not isinstance(self.scan_bits, int) or not 8 <= self.scan_bits <= 1024
                or self.scan_bits & (self.scan_bits - 1)):
            raise ValueError(f"scan_bits must be a power of two in 8..1024, not {self.scan_bits!r}")

    @property
    def lane(self) -> "LaneParams":
        """The lane's own parameters (itself; a :class:`DecoderParams` drops its lane count)."""
        return LaneParams(**{f.name: getattr(self, f.name) for f in fields(LaneParams)})

    def kwargs(self) -> dict:
        """The lane parameters as keyword arguments of ``LayerDecoder`` (and ``DecoderTop``)."""
        return asdict(self.lane)

    @property
    def tag(self) -> str:
        """A short name of the lane as built (the accumulator caps its scan width at the block size)."""
        scan = min(self.scan_bits, 1 << self.block_bits)
        return f"b{self.weight_bits}_p{self.block_bits}_w{self.word_bits}_l{self.max_code_len}" \
               f"_t{self.num_tables}_s{scan}"


@dataclass(frozen=True)
class DecoderParams(LaneParams):
    """A ``DecoderTop``: ``lanes`` lanes of the same :class:`LaneParams`."""

    lanes: int = 1

    def __post_init__(self):
        super().__post_init__()
        check_int_range("lanes", self.lanes, 1, MAX_LANES)

    def as_dict(self) -> dict:
        """``lanes``, then the lane parameters (the order of the results files and Verilog headers)."""
        return {"lanes": self.lanes, **self.kwargs()}
