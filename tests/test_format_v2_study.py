"""The format v2 study's tANS coder (tools/format_v2_study.py): normalized counts, table
descriptions and interleaved round trips."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parent.parent / "tools" / "format_v2_study.py"
_SPEC = importlib.util.spec_from_file_location("format_v2_study", _PATH)
study = importlib.util.module_from_spec(_SPEC)
sys.modules["format_v2_study"] = study
_SPEC.loader.exec_module(study)


@pytest.mark.parametrize("table_log", [9, 10, 11])
@pytest.mark.parametrize("alphabet", [1, 2, 7, 64, 253])
def test_normalized_counts_fill_the_table_and_keep_every_used_symbol(table_log, alphabet):
    rng = np.random.default_rng(alphabet)
    hist = np.bincount(rng.geometric(0.1, 20000) % alphabet, minlength=alphabet + 2)
    counts = study.normalize_counts(hist, table_log)
    assert counts.sum() == 1 << table_log
    assert np.array_equal(counts > 0, hist > 0)


def test_table_description_reads_back():
    rng = np.random.default_rng(3)
    for table_log in (9, 10, 11):
        hist = rng.zipf(1.3, 120) * (rng.random(120) < 0.6)
        counts = study.normalize_counts(hist, table_log)
        assert study.read_ncount(study.write_ncount(counts, table_log), len(counts)) == (list(counts), table_log)


def test_interleaved_states_round_trip_across_tables():
    rng = np.random.default_rng(5)
    tables = [study.normalize_counts(rng.zipf(1.5, a), 10) for a in (3, 40, 128)]
    coder = study.TansTables(tables, 10)
    for count in (0, 1, 3, 4, 5, 100):
        table = rng.integers(0, 3, count)
        symbol = np.array([rng.choice(np.flatnonzero(tables[t])) for t in table], dtype=np.int64)
        data, bits = study.tans_pack(coder, table, symbol)
        assert study.tans_unpack(coder, table, data, bits) == list(symbol)


def test_vectorized_coder_matches_the_scalar_one_and_decodes():
    rng = np.random.default_rng(7)
    tables = [study.normalize_counts(rng.zipf(1.4, a), 11) for a in (5, 64)]
    coder = study.TansTables(tables, 11)
    counts = [0, 9, 57, 4]                       # members of four blocks
    table = rng.integers(0, 2, sum(counts))
    symbol = np.array([rng.choice(np.flatnonzero(tables[t])) for t in table], dtype=np.int64)
    block = np.repeat(np.arange(len(counts)), counts)
    index = np.arange(len(block)) - np.repeat(np.cumsum(counts) - counts, counts)
    stream = block * study.STREAMS + index % study.STREAMS
    nb, value, final = study.tans_encode(coder, table, symbol, stream, index // study.STREAMS,
                                         len(counts) * study.STREAMS)
    decoded, read, end = study.tans_decode(coder, table, stream, index // study.STREAMS, final, value)
    assert np.array_equal(decoded, symbol) and np.array_equal(read, nb)
    start = 0
    for b, c in enumerate(counts):
        _, bits = study.tans_pack(coder, table[start : start + c], symbol[start : start + c])
        assert bits == nb[start : start + c].sum() + 11 * min(c, study.STREAMS)
        start += c


def test_a_geometric_source_costs_about_its_entropy():
    rng = np.random.default_rng(11)
    s = rng.geometric(0.25, 100000) - 1
    h = np.bincount(s)
    coder = study.TansTables([study.normalize_counts(h, 10)], 10)
    i = np.arange(len(s))
    nb, _, _ = study.tans_encode(coder, np.zeros(len(s), np.int64), s, i % 4, i // 4, 4)
    assert study.hist_entropy(h) <= nb.sum() + 64 < 1.01 * study.hist_entropy(h)
