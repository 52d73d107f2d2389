"""The format's one definition (``sw_codec.format``): codes as docs/FORMAT.md states them, the
hardware's enums as twins of them, and the lane parameters checked where they are built."""

import pytest

from sw_codec import format as fmt


def test_codes_are_those_of_the_format_document():
    """The codes are on the wire and on the decoder's ports: changing one is a format change."""
    assert {m.label: m.value for m in fmt.Mode} == {"raw": 0, "repeat": 1, "distance": 2, "huffman": 3}
    assert {s.label: s.value for s in fmt.Slots} == {"all": 0, "free": 1}
    assert {k.name: k.value for k in fmt.TokenKind} == {"BLOCK": 0, "MEMBER": 1, "END": 2}
    assert {m.label: m.value for m in fmt.LayerMode} == {"float32": 0, "raw": 1, "repeat": 2, "distance": 3,
                                                         "huffman": 4}
    assert {g.label: g.value for g in fmt.Granularity} == {"none": 0, "tensor": 1, "channel": 2}
    assert fmt.MODES == ("raw", "repeat", "distance", "huffman") and fmt.SLOTS == ("all", "free")
    assert set(fmt.MODES) == {m.label for m in fmt.LayerMode} - {"float32"}


def test_field_widths_and_their_limits_agree():
    assert fmt.MAX_SYMBOLS == 1 << fmt.SYMBOL_BITS
    assert fmt.MAX_CODE_LENGTH == (1 << fmt.LENGTH_BITS) - 1
    assert fmt.NUM_TABLES_CHOICES == (1, 2, 4, 8) and fmt.MAX_TABLES == 1 << ((1 << fmt.TABLES_LOG2_BITS) - 1)
    assert (fmt.MAX_BLOCK_BITS + 1).bit_length() <= fmt.DISTANCE_WIDTH_BITS  # a width field holds bitlen(n - 1)


def test_labels_name_their_codes_and_unknown_ones_are_refused():
    assert fmt.Mode.of("huffman") is fmt.Mode.HUFFMAN and fmt.Slots.of("FREE") is fmt.Slots.FREE
    with pytest.raises(ValueError, match="unknown mode 'zip'; one of raw, repeat, distance, huffman"):
        fmt.Mode.of("zip")
    assert fmt.WEIGHT_BITS == tuple(range(2, 17))
    for bits in (1, 17):
        with pytest.raises(ValueError, match="bits must be in 2..16"):
            fmt.check_params(bits, 8)
    with pytest.raises(ValueError, match="block_bits must be in 4..16"):
        fmt.check_params(8, 17)


def test_the_hardware_enums_are_twins_of_the_format_codes():
    from amaranth.hdl import Shape

    from hw import tokens

    for hardware, codes in [(tokens.Mode, fmt.Mode), (tokens.Slots, fmt.Slots), (tokens.TokenKind, fmt.TokenKind)]:
        assert [(m.name, m.value) for m in hardware] == [(m.name, m.value) for m in codes]
        assert Shape.cast(hardware) == Shape.cast(codes)         # the narrowest unsigned width
        assert hardware.__name__ == codes.__name__


@pytest.mark.parametrize("field,value", [("weight_bits", 17), ("weight_bits", 1), ("block_bits", 3), ("block_bits", 17),
                                         ("word_bits", 48), ("max_code_len", 16), ("num_tables", 3),
                                         ("scan_bits", 48), ("lanes", 0)])
def test_lane_parameters_are_checked_when_built(field, value):
    from hw.params import DecoderParams

    with pytest.raises(ValueError, match=field):
        DecoderParams(**{field: value})


def test_decoder_parameters_give_the_lane_and_its_keywords():
    from hw.params import DecoderParams, LaneParams

    p = DecoderParams(lanes=2, block_bits=6, scan_bits=16)
    assert p.lane == LaneParams(block_bits=6, scan_bits=16)
    assert p.kwargs() == {"weight_bits": 8, "block_bits": 6, "word_bits": 32, "max_code_len": 15, "num_tables": 4,
                          "scan_bits": 16}
    assert list(p.as_dict()) == ["lanes", *p.kwargs()] and p.lane.tag == "b8_p6_w32_l15_t4_s16"
