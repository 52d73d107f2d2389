"""Truncated, corrupted and hostile input raises FormatError naming the layer and byte offset."""

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, strategies as st

from sw_codec import FormatError, compress, decompress, inspect
from sw_codec.bits import BitWriter
from sw_codec.container import HEADER, LayerRecord, write_container
from sw_codec.decoder import decode_layer
from sw_codec.encoder import encode_layer
from sw_codec.format import POSITION_MODES, SLOTS, VERSIONS

versions = pytest.mark.parametrize("version", VERSIONS)


def small_model(mode="auto", block_bits=6, version=1):
    rng = np.random.default_rng(0)
    return compress({"layer.w": rng.laplace(size=(20, 30)).astype(np.float32),
                     "layer.b": rng.normal(size=30).astype(np.float32)}, mode=mode, block_bits=block_bits,
                    version=version)


def with_table_crc(data: bytes) -> bytes:
    """Recompute the table CRC so a change inside the table reaches the field checks."""
    size = struct.unpack_from("<I", data, 12)[0]
    end = HEADER.size + size
    return data[:end] + struct.pack("<I", zlib.crc32(data[HEADER.size:end])) + data[end + 4:]


@versions
def test_wrong_magic(version):
    data = small_model(version=version)
    with pytest.raises(FormatError, match="not a .pcz file") as e:
        inspect(b"XXXX" + data[4:])
    assert e.value.offset == 0


@versions
def test_unknown_version(version):
    data = small_model(version=version)
    with pytest.raises(FormatError, match="version 7"):
        inspect(data[:4] + struct.pack("<H", 7) + data[6:])


@versions
@pytest.mark.parametrize("cut", [0, 5, 17, 40, -1])
def test_truncated_file(cut, version):
    data = small_model(version=version)
    with pytest.raises(FormatError):
        decompress(data[:cut])


@versions
def test_payload_crc_mismatch_names_layer_and_offset(version):
    data = bytearray(small_model(mode="huffman", version=version))
    record = inspect(bytes(data))[0]
    data[record.offset + record.length // 2] ^= 0x10
    with pytest.raises(FormatError, match="CRC-32 mismatch") as e:
        decompress(bytes(data))
    assert e.value.layer == "layer.w" and e.value.offset == record.offset
    assert "layer 'layer.w'" in str(e.value) and f"byte offset {record.offset}" in str(e.value)


def test_table_crc_mismatch():
    data = bytearray(small_model(version=1))
    data[HEADER.size + 3] ^= 1
    with pytest.raises(FormatError, match="layer table CRC-32"):
        inspect(bytes(data))


def hostile_file(shape, mode="huffman", payload=b"\0" * 64, bits=8, block_bits=14, version=1):
    slots = "free" if mode in POSITION_MODES else "all"
    record = LayerRecord("evil", shape, mode, bits, "tensor", slots, block_bits, np.ones(1, np.float32))
    return write_container([record], [payload], version=version, validate=False)


@versions
@pytest.mark.parametrize("mode", ["raw", "repeat", "distance", "huffman", "float32"])
def test_header_claiming_10_to_the_12_weights_fails_before_allocating(mode, version):
    data = hostile_file((10**6, 10**6), mode=mode, bits=32 if mode == "float32" else 8, version=version)
    if mode == "float32":
        data = write_container([LayerRecord("evil", (10**6, 10**6), "float32", 32)], [b"\0" * 64],
                               version=version, validate=False)
    with pytest.raises(FormatError, match="evil"):
        decompress(data)


@versions
def test_header_claiming_more_than_2_to_the_40_weights(version):
    with pytest.raises(FormatError, match="claims"):
        inspect(hostile_file((1 << 21, 1 << 21), version=version))


def block_payload(fields, *, mode="repeat", count_k=0):
    """A one-block payload: preamble (count_k), a block table with one offset, then ``fields``."""
    w = BitWriter()
    w.write(count_k, 4)
    pre = w.getvalue()
    body = BitWriter()
    for value, nbits in fields:
        body.write(value, nbits)
    return pre + struct.pack("<I", 0) + body.getvalue()


def eg0(x):
    y = x + 1
    return (y, 2 * y.bit_length() - 1)


def count_field(count, previous=0):
    """A group count as the format codes it with count_k = 0 (zigzag residual, EG order bitlen(p) >> 1)."""
    r = count - previous
    z = 2 * r if r >= 0 else -2 * r - 1
    k = previous.bit_length() >> 1
    y = z + (1 << k)
    return (y, 2 * y.bit_length() - 1 - k)


def test_group_count_that_exceeds_the_block():
    # 16-weight block, 2 values: implicit 0, then value 5 claiming 16 slots (at most 15 are left).
    payload = block_payload([eg0(1), (0, 8), (5, 8), count_field(16)])
    with pytest.raises(FormatError, match="count 16 exceeds"):
        decode_layer(payload, 16, 8, "repeat", "all", 4)


def test_too_many_distinct_values():
    payload = block_payload([eg0(20)])
    with pytest.raises(FormatError, match="21 distinct values in 16 slots"):
        decode_layer(payload, 16, 8, "repeat", "all", 4)


def test_index_outside_the_domain_and_duplicate_positions():
    # distance mode, all slots: value 3, two members with distance 15: indices 15 and 31 (past 16).
    payload = block_payload([eg0(1), (0, 8), (3, 8), count_field(2), (4, 5), (15, 4), (15, 4)])
    with pytest.raises(FormatError, match="outside its domain"):
        decode_layer(payload, 16, 8, "distance", "all", 4)
    # repeat mode, all slots: values 3 and 4 both claim position 2.
    payload = block_payload([eg0(2), (0, 8), (3, 8), count_field(1), (2, 4), eg0(0), count_field(1, 1), (2, 4)])
    with pytest.raises(FormatError, match="same position"):
        decode_layer(payload, 16, 8, "repeat", "all", 4)


def test_huffman_table_over_subscribed_and_past_the_length_limit():
    # preamble: count_k(4) rice_bias(4) tables_log2(2), then a table with 3 codes of length 1.
    w = BitWriter()
    w.write(0, 4), w.write(0, 4), w.write(0, 2), w.write(3, 6), w.write(2, 4), w.write(3, 7), w.write(1, 7)
    for s in (0, 1, 2, 3):
        w.write(s, 6)
    with pytest.raises(FormatError, match="over-subscribed"):
        decode_layer(w.getvalue() + bytes(64), 100, 8, "huffman", "free", 6)
    from sw_codec.huffman import HuffmanTable
    from sw_codec.bits import BitReader
    w = BitWriter()
    w.write(3, 6), w.write(15, 4)
    for c in [0] * 13 + [2, 2]:
        w.write(c, 7)
    for s in (0, 1, 2, 3):
        w.write(s, 6)
    with pytest.raises(FormatError, match="longer than the decoder's limit of 12"):
        HuffmanTable.read(BitReader(w.getvalue()), max_code_length=12)


def test_cli_prints_the_error_and_exits_non_zero(tmp_path, capsys):
    from poscodec.cli import main

    bad = tmp_path / "bad.pcz"
    bad.write_bytes(b"not a pcz file at all")
    assert main(["decompress", str(bad), "-o", str(tmp_path / "out.npz")]) == 2
    assert "not a .pcz file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def payloads():
    rng = np.random.default_rng(5)
    q = np.clip(np.rint(rng.laplace(0, 4, 700)), -127, 127).astype(int)
    return q, {(m, s): encode_layer(q, 8, m, s, 6) for m in POSITION_MODES for s in SLOTS}


@given(data=st.data())
def test_fuzzed_payloads_raise_only_format_error(payloads, data):
    """Mutations reach the decoder itself (no CRC in the way): FormatError or a full-size result."""
    q, encoded = payloads
    mode, slots = data.draw(st.sampled_from(sorted(encoded)))
    payload = bytearray(encoded[mode, slots])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        payload = payload[: data.draw(st.integers(0, len(payload)))]
    try:
        out = decode_layer(bytes(payload), q.size, 8, mode, slots, 6)
    except FormatError:
        return
    assert out.shape == q.shape


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_format_error(blob):
    with pytest.raises(FormatError):
        decompress(blob)
    for mode in POSITION_MODES:
        try:
            decode_layer(blob, 100, 8, mode, "free", 5)
        except FormatError:
            pass
