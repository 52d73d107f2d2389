"""Container version 2: the compact directory round-trips, both versions read, every corruption is
a FormatError that names the layer or the byte offset, found before allocating what a file claims."""

import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw_codec import FormatError, compress, decompress, inspect
from sw_codec.container import (LayerRecord, directory_parts, file_version, implied_length, layout, payload_of,
                                read_table, scale_count, varint, write_container)
from sw_codec.format import (HEADER_V2, MAGIC, MAX_LAYERS, MAX_NAME_BYTES, MAX_WEIGHTS, MODES, VERSION, VERSIONS,
                             block_format_of)

DIR_AT = HEADER_V2.size                       # the stored directory starts after the header


# ---- Building files ----------------------------------------------------------------------------

def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def v2_file(directory: bytes, layers: int, rest: bytes = b"\0\0\0\0", *, stored: bytes | None = None,
            size: int | None = None, flags: int = 0) -> bytes:
    """A version-2 file from an inflated ``directory`` (deflated here unless ``stored`` is given),
    with a correct header-and-directory CRC; ``rest`` is the scale section, its CRC and payloads
    (by default no scales and no payloads)."""
    stored = deflate(directory) if stored is None else stored
    head = HEADER_V2.pack(MAGIC, 2, flags, layers, len(stored), len(directory) if size is None else size)
    return head + stored + struct.pack("<I", zlib.crc32(head + stored)) + rest


def one_layer(name="conv.w", shape=(4, 8), mode="huffman", bits=8, granularity="channel", slots="free",
              block_bits=6, payload=b"\x01\x02\x03"):
    """A record and its payload (float32 and raw payloads get their implied length)."""
    record = LayerRecord(name, shape, mode, bits, granularity, slots, block_bits,
                         np.arange(1, 1 + scale_count(shape, granularity), dtype=np.float32))
    need = implied_length(mode, record.count, bits)
    return record, (bytes(range(256)) * (1 + (need or 0) // 256))[:need] if need is not None else payload


def tampered(part: str, value: bytes, records=None) -> bytes:
    """A version-2 file of ``records`` (one huffman layer by default) whose directory ``part`` is
    replaced by ``value``; CRCs recomputed so the parser meets the change."""
    if records is None:
        records = [one_layer()]
    recs, payloads = zip(*records)
    valid = write_container(list(recs), list(payloads), version=2)
    parts = directory_parts(list(recs))
    parts[part] = value
    scales = b"".join(np.asarray(r.scales, "<f4").tobytes() for r in recs)
    return v2_file(b"".join(parts.values()), len(recs), scales + struct.pack("<I", zlib.crc32(scales))
                   + b"".join(payloads)), valid


def stored_size(data: bytes) -> int:
    return struct.unpack_from("<I", data, 12)[0]


def refused(data: bytes, match: str) -> FormatError:
    with pytest.raises(FormatError, match=match) as e:
        read_table(data)
    assert e.value.layer is not None or e.value.offset is not None
    return e.value


# ---- Round trips -------------------------------------------------------------------------------

name_parts = st.sampled_from(["encoder", "layer", "0", "1", "12", "attention", "conv2d_7", "w", "b", "ü", "."])
names = st.lists(name_parts, min_size=0, max_size=5).map("".join)


@st.composite
def directories(draw):
    """Random layers: names sharing prefixes, every mode, width, granularity and slot counting."""
    layer_names = draw(st.lists(names, min_size=0, max_size=12, unique=True))
    layers = []
    for name in layer_names:
        mode = draw(st.sampled_from(("float32",) + MODES))
        shape = tuple(draw(st.lists(st.integers(0, 9), max_size=4)))
        bits = 32 if mode == "float32" else draw(st.integers(2, 16))
        granularity = "none" if mode == "float32" else draw(st.sampled_from(["tensor", "channel"]))
        slots = draw(st.sampled_from(["all", "free"])) if mode not in ("float32", "raw") else "all"
        block_bits = draw(st.integers(4, 16)) if mode not in ("float32", "raw") else 0
        record = LayerRecord(name, shape, mode, bits, granularity, slots, block_bits,
                             np.array(draw(st.lists(st.floats(width=32, allow_nan=False),
                                                    min_size=scale_count(shape, granularity),
                                                    max_size=scale_count(shape, granularity))), np.float32))
        need = implied_length(mode, record.count, bits)
        payload = (np.random.default_rng(draw(st.integers(0, 2**32 - 1))).bytes(need) if need is not None
                   else draw(st.binary(max_size=300)))
        layers.append((record, payload))
    return layers


FIELDS = ("name", "shape", "mode", "bits", "granularity", "slots", "block_bits", "offset", "length", "crc32")


@settings(max_examples=60, deadline=None)
@given(layers=directories())
def test_random_directories_round_trip_in_both_versions(layers):
    for version in VERSIONS:
        records = [LayerRecord(**{**r.__dict__}) for r, _ in layers]
        payloads = [p for _, p in layers]
        data = write_container(records, payloads, version=version)
        assert file_version(data) == version
        back = read_table(data)
        assert len(back) == len(records)
        for r, b, p in zip(records, back, payloads):
            assert [getattr(b, f) for f in FIELDS] == [getattr(r, f) for f in FIELDS]
            assert b.scales.tobytes() == np.asarray(r.scales, "<f4").tobytes()
            assert b.version == version and b.block_format == block_format_of(version)
            assert payload_of(data, b) == p
        sizes = layout(data)
        assert sizes["directory"] + sizes["scales"] + sizes["payloads"] == len(data)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_model_decodes_the_same_from_either_version(version):
    rng = np.random.default_rng(1)
    tensors = {"block.0.w": rng.laplace(size=(12, 40)).astype(np.float32),
               "block.0.b": rng.normal(size=12).astype(np.float32),
               "block.1.w": rng.laplace(size=(6, 3, 3, 3)).astype(np.float32)}
    data = compress(tensors, granularity="channel", block_bits=6, version=version)
    assert file_version(data) == version
    reference = decompress(compress(tensors, granularity="channel", block_bits=6, version=1), integers=True)
    out = decompress(data, integers=True)
    assert out.keys() == reference.keys()
    for name in out:
        np.testing.assert_array_equal(out[name], reference[name])


def test_the_writer_writes_version_2_by_default_and_v2_is_smaller():
    records = [one_layer(f"model.layers.{i}.mlp.weight") for i in range(40)]
    v2 = write_container(*map(list, zip(*records)))
    v1 = write_container(*map(list, zip(*records)), version=1)
    assert VERSION == 2 and file_version(v2) == 2
    assert layout(v2)["payloads"] == layout(v1)["payloads"] and layout(v2)["scales"] == layout(v1)["scales"]
    assert layout(v2)["directory"] < layout(v1)["directory"] / 4


def test_varints_are_leb128():
    assert [varint(x) for x in (0, 1, 127, 128, 300, 2**63 - 1)] == [
        b"\0", b"\1", b"\x7f", b"\x80\x01", b"\xac\x02", b"\xff" * 8 + b"\x7f"]


# ---- Versions and block formats ----------------------------------------------------------------

def test_a_version_3_file_is_refused_by_name():
    data = bytearray(write_container(*map(list, zip(one_layer()))))
    data[4:6] = struct.pack("<H", 3)
    with pytest.raises(FormatError, match=r"unsupported \.pcz version 3 \(this reader reads versions 1, 2\)") as e:
        decompress(bytes(data))
    assert e.value.offset == 4


def test_block_format_follows_the_version():
    assert [block_format_of(v) for v in VERSIONS] == [1, 2]
    for bad in (0, 3, "2"):
        with pytest.raises(ValueError, match=r"container version must be one of \(1, 2\)"):
            block_format_of(bad)
    with pytest.raises(ValueError, match="container version"):
        write_container([], [], version=3)
    with pytest.raises(ValueError, match="container version"):
        compress({"w": np.ones((2, 2), np.float32)}, version=0)


# ---- The writer refuses what the reader would -----------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_the_writer_refuses_duplicate_names(version):
    a, b = one_layer("same"), one_layer("same")
    with pytest.raises(ValueError, match="repeats the name"):
        write_container([a[0], b[0]], [a[1], b[1]], version=version)


def test_the_writer_refuses_a_float32_payload_of_the_wrong_length():
    record = LayerRecord("bias", (5,), "float32", 32)
    with pytest.raises(ValueError, match="'bias': float32 payload of 16 bytes, 20 expected"):
        write_container([record], [b"\0" * 16])


# ---- Corruption: header and stored directory --------------------------------------------------

def small_v2():
    return write_container(*map(list, zip(one_layer("a.w"), one_layer("a.b", (8,), "float32", 32, "none", "all", 0))))


def test_every_truncation_is_a_format_error():
    data = small_v2()
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            decompress(data[:cut])


def test_directory_crc_mismatch():
    data = bytearray(small_v2())
    data[DIR_AT + 2] ^= 0x20
    stored = struct.unpack_from("<I", data, 12)[0]
    e = refused(bytes(data), "header and directory CRC-32 mismatch")
    assert e.offset == DIR_AT + stored


def test_a_corrupt_layer_count_is_caught_by_the_crc():
    data = bytearray(small_v2())
    data[8] ^= 1
    refused(bytes(data), "CRC-32 mismatch")


@pytest.mark.parametrize("kw, match, offset", [
    ({"flags": 1}, "unknown header flags 0x1", 6),
    ({"layers": MAX_LAYERS + 1}, "claims 1048577 layers", 8),
    ({"stored": b"\0" * 39, "size": 1032 * 39 + 1}, "from 39 stored bytes \\(DEFLATE expands at most 1032:1\\)", 16),
    ({"layers": 5000}, "claims 5000 layers, more than a directory of", 8),
])
def test_header_fields_out_of_range(kw, match, offset):
    directory = b"".join(directory_parts([one_layer()[0]]).values())
    layers = kw.pop("layers", 1)
    assert refused(v2_file(directory, layers, **kw), match).offset == offset


@pytest.mark.parametrize("stored, size, match", [
    (b"\xff\xff\xff", 8, "not a valid DEFLATE stream"),
    (deflate(b"abcdefgh" * 8)[:-3], 64, "truncated"),
    (deflate(b"abcdefgh" * 8) + b"junk", 64, "4 bytes after the directory's DEFLATE stream"),
    (deflate(b"abcdefgh" * 8), 63, "inflates to more than the 63 bytes"),
    (deflate(b"abcdefgh" * 8), 65, "inflates to 64 bytes, the header claims 65"),
])
def test_a_broken_deflate_stream(stored, size, match):
    e = refused(v2_file(b"", 1, stored=stored, size=size), match)
    assert e.offset == (DIR_AT + len(stored) - 4 if stored.endswith(b"junk") else DIR_AT)


def test_a_huge_claimed_directory_is_refused_without_inflating_it():
    tracemalloc.start()
    refused(v2_file(b"", 1, stored=b"\0" * 64, size=0xFFFFFFFF), "DEFLATE expands")
    # The most layers a file may claim, in the smallest directory that holds them: empty names.
    data = v2_file(b"", MAX_LAYERS, stored=deflate(b"\0" * 8 * MAX_LAYERS), size=8 * MAX_LAYERS)
    refused(data, "layer #1 repeats the name")
    assert tracemalloc.get_traced_memory()[1] < 64 << 20
    tracemalloc.stop()


# ---- Corruption: inside the directory ----------------------------------------------------------

@pytest.mark.parametrize("names, match", [
    (b"\x80\x00\x00", "bad varint \\(a redundant zero byte\\) at directory byte 0"),
    (b"\xff" * 10, "bad varint \\(longer than 9 bytes\\)"),
    (b"\x03\x02ab", "shares 3 bytes with a previous name of 0"),
    (b"\x00" + varint(MAX_NAME_BYTES + 1), f"is {MAX_NAME_BYTES + 1} bytes \\(at most {MAX_NAME_BYTES}\\)"),
    (b"\x00\x02\xff\xfe", "name of layer #0 is not UTF-8"),
])
def test_bad_names_and_varints(names, match):
    data, _ = tampered("names", names)
    refused(data, match)


def test_a_name_running_past_the_directory():
    refused(v2_file(b"\x00\x7f" + b"x" * 20, 1), "directory truncated at directory byte 2")
    refused(v2_file(b"\x00" + b"\x80" * 7, 1), "directory truncated inside a varint at directory byte 1")


def test_a_duplicate_name_is_refused_naming_it():
    records = [one_layer("x.weight"), one_layer("x.bias", (8,), "float32", 32, "none", "all", 0)]
    data, _ = tampered("names", b"\x00\x08x.weight\x08\x00", records)
    e = refused(data, "layer #1 repeats the name of an earlier layer")
    assert e.layer == "x.weight"


@pytest.mark.parametrize("modes, match", [
    (bytes([4 | 2 << 3 | 1 << 5 | 0x40, 8, 6]), "mode byte 0x74 has unknown bits set"),
    (bytes([5 | 2 << 3, 8, 6]), "unknown mode/granularity/slots code 5/2/0"),
    (bytes([4 | 3 << 3, 8, 6]), "unknown mode/granularity/slots code 4/3/0"),
    (bytes([4 | 2 << 3, 17, 6]), "unsupported bit width 17"),
    (bytes([4 | 2 << 3, 8, 3]), "block bits 3 outside 4..16"),
    (bytes([4, 8, 6]), "integer layer without a scale granularity"),
    (bytes([1 | 2 << 3 | 1 << 5, 8]) + b"\x06", "raw layer with slots 'free'"),
])
def test_mode_fields_out_of_range(modes, match):
    data, _ = tampered("modes", modes)
    assert refused(data, match).layer == "conv.w"


def test_a_float32_layer_with_a_granularity():
    records = [one_layer("f", (3,), "float32", 32, "none", "all", 0)]
    data, _ = tampered("modes", bytes([0 | 1 << 3]), records)
    refused(data, "float32 layer must have 32 bits and no granularity")


@pytest.mark.parametrize("shapes, match", [
    (varint(9) + b"\x01" * 9, "9 dimensions \\(at most 8\\)"),
    (varint(1) + varint(MAX_WEIGHTS + 1), f"dimension {MAX_WEIGHTS + 1}"),
    (varint(2) + varint(1 << 21) * 2, "claims 4398046511104 weights"),
])
def test_shapes_out_of_range(shapes, match):
    data, _ = tampered("shapes", shapes)
    assert refused(data, match).layer == "conv.w"


def test_unexplained_bytes_at_the_end_of_the_directory():
    data, _ = tampered("crcs", directory_parts([one_layer()[0]])["crcs"] + b"\0")
    refused(data, "1 unexplained bytes at the end of the directory")


# ---- Corruption: scales and payloads -----------------------------------------------------------

def test_scale_section_crc_mismatch_and_truncation():
    data = bytearray(small_v2())
    scales_at = DIR_AT + stored_size(data) + 4
    data[scales_at + 1] ^= 4
    assert refused(bytes(data), "scale section CRC-32 mismatch").offset == scales_at + 16
    data, _ = tampered("shapes", varint(2) + varint(1 << 30) + varint(2))   # 2**30 channel scales
    tracemalloc.start()
    e = refused(data, "scale section of 1073741824 scales runs past the end")
    assert e.offset == DIR_AT + stored_size(data) + 4
    assert tracemalloc.get_traced_memory()[1] < 64 << 20
    tracemalloc.stop()


def test_a_payload_past_the_end_of_the_file_names_its_layer():
    data, _ = tampered("lengths", varint(1000))
    e = refused(data, "payload of 1000 bytes runs past the end of the file")
    assert e.layer == "conv.w" and e.offset == DIR_AT + stored_size(data) + 4 + 4 * 4 + 4


def test_bytes_after_the_last_payload():
    data = small_v2()
    assert refused(data + b"\0\0", "2 bytes after the last payload").offset == len(data)


def test_a_corrupt_payload_names_its_layer():
    from sw_codec.codec import decode_record

    rng = np.random.default_rng(2)
    data = bytearray(compress({"a.w": rng.normal(size=(4, 8)).astype(np.float32),
                               "a.b": rng.normal(size=8).astype(np.float32)}, block_bits=4))
    for record in read_table(bytes(data)):
        corrupt = bytearray(data)
        corrupt[record.offset + record.length - 1] ^= 1
        with pytest.raises(FormatError, match="payload CRC-32 mismatch") as e:
            decode_record(bytes(corrupt), record)
        assert e.value.layer == record.name and e.value.offset == record.offset


@given(st.binary(max_size=200))
def test_random_bytes_after_a_version_2_header_raise_only_format_error(blob):
    with pytest.raises(FormatError):
        read_table(MAGIC + struct.pack("<H", 2) + blob)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_mutated_version_2_files_raise_only_format_error(data):
    valid = bytearray(small_v2())
    for _ in range(data.draw(st.integers(1, 3))):
        valid[data.draw(st.integers(0, len(valid) - 1))] = data.draw(st.integers(0, 255))
    try:
        decompress(bytes(valid))
    except FormatError:
        pass


# ---- The command line --------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_cli_writes_either_version(tmp_path, capsys, version):
    from poscodec.cli import main

    model, pcz = tmp_path / "m.npz", tmp_path / "m.pcz"
    np.savez(model, w=np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32))
    assert main(["-q", "compress", str(model), "-o", str(pcz), "--block-bits", "6",
                 "--container-version", str(version)]) == 0
    assert file_version(pcz.read_bytes()) == version
    assert main(["inspect", str(pcz)]) == 0
    out = capsys.readouterr().out
    assert f"container version {version}" in out and "directory" in out and "payloads" in out
    assert [r.name for r in inspect(pcz.read_bytes())] == ["w"]


# ---- The format document -----------------------------------------------------------------------

def test_the_example_of_the_format_document():
    """docs/FORMAT.md, "Version 2": two layers, their inflated directory and offsets, byte for byte."""
    a = LayerRecord("a.w", (4, 8), "huffman", 8, "channel", "free", 6, np.array([0.5, 0.25, 1, 2], np.float32))
    b = LayerRecord("a.b", (8,), "float32", 32)
    data = write_container([a, b], [b"\1\2\3", np.arange(8, dtype="<f4").tobytes()])
    parts = directory_parts([a, b])
    assert {k: v.hex(" ").upper() for k, v in parts.items()} == {
        "names": "00 03 61 2E 77 02 01 62", "modes": "34 08 06 00", "shapes": "02 04 08 01 08", "lengths": "03",
        "crcs": "1D 80 BC 55 7C 40 0A 7A"}
    _, _, _, layers, stored, size = HEADER_V2.unpack_from(data)
    assert (layers, stored, size, len(data)) == (2, 28, 26, 107)
    assert [(r.offset, r.length) for r in read_table(data)] == [(72, 3), (75, 32)]


def test_the_mode_byte_holds_every_code():
    from sw_codec.format import Granularity, LayerMode, Slots

    assert max(LayerMode) < 8 and max(Granularity) < 4 and max(Slots) < 2


def read_as_the_document_says(data: bytes) -> list[dict]:
    """A version-2 reader written from docs/FORMAT.md alone (no sw_codec code): valid files only."""
    import zlib as z

    layers, stored, size = struct.unpack_from("<III", data, 8)
    directory = z.decompressobj(-15).decompress(data[20 : 20 + stored])
    assert len(directory) == size
    pos = 0

    def take(n):
        nonlocal pos
        pos += n
        return directory[pos - n : pos]

    def leb128():
        value, shift = 0, 0
        while True:
            byte = take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    out, previous = [], b""
    for _ in range(layers):
        p, s = leb128(), leb128()
        previous = previous[:p] + take(s)
        out.append({"name": previous.decode()})
    for layer in out:
        byte = take(1)[0]
        layer["mode"] = ["float32", "raw", "repeat", "distance", "huffman"][byte & 7]
        layer["granularity"] = ["none", "tensor", "channel"][byte >> 3 & 3]
        layer["slots"] = ["all", "free"][byte >> 5 & 1]
        layer["bits"] = 32 if layer["mode"] == "float32" else take(1)[0]
        layer["block_bits"] = take(1)[0] if layer["mode"] in ("repeat", "distance", "huffman") else 0
    for layer in out:
        layer["shape"] = tuple(leb128() for _ in range(leb128()))
    for layer in out:
        count = int(np.prod(layer["shape"], dtype=object)) if layer["shape"] else 1
        layer["length"] = {"float32": 4 * count, "raw": (count * layer["bits"] + 7) // 8}.get(layer["mode"]) \
            if layer["mode"] in ("float32", "raw") else leb128()
    for layer in out:
        layer["crc32"] = struct.unpack("<I", take(4))[0]
    assert pos == size
    at = 24 + stored
    for layer in out:
        n = {"none": 0, "tensor": 1}.get(layer["granularity"], layer["shape"][0] if len(layer["shape"]) >= 2 else 1)
        layer["scales"] = data[at : at + 4 * n]
        at += 4 * n
    at += 4
    for layer in out:
        layer["offset"] = at
        at += layer["length"]
    assert at == len(data)
    return out


@settings(max_examples=40, deadline=None)
@given(layers=directories())
def test_a_reader_written_from_the_document_reads_what_the_writer_writes(layers):
    data = write_container([r for r, _ in layers], [p for _, p in layers])
    ours = read_table(data)
    theirs = read_as_the_document_says(data)
    assert len(ours) == len(theirs)
    for r, t in zip(ours, theirs):
        assert t == {**{f: getattr(r, f) for f in ("name", "mode", "granularity", "slots", "bits", "block_bits",
                                                  "shape", "length", "crc32", "offset")},
                     "scales": r.scales.astype("<f4").tobytes()}
