"""poscodec reference codec: the executable specification of the decoder hardware.

The public API (the ``poscodec`` command line is a thin layer over it):

- :func:`load_model`, :func:`quantize`, :func:`dequantize`
- :func:`compress` (float tensors), :func:`compress_integers` (lossless on given integers),
  :func:`decompress`, :func:`inspect`, :func:`encode_integers`
- :func:`sw_codec.report.report` (bits per weight of every mode and baseline)
- the format definition, :mod:`sw_codec.format`; the spec decoder, :mod:`sw_codec.decoder`
- the decoder stages, named as in ``hw/``: :class:`CanonicalHuffmanDecoder`,
  :class:`DistanceAccumulator`, :class:`RepeatExpander`
- :class:`FormatError`, the one exception malformed input raises

The names are imported on first use, so that importing :mod:`sw_codec.format` alone (as the
hardware does) loads nothing else of the codec.
"""

import importlib

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "compress": "codec", "compress_integers": "codec", "decompress": "codec", "encode_integers": "codec",
    "inspect": "codec", "load_model": "models", "ModelError": "models", "quantize": "quantization",
    "dequantize": "quantization", "FormatError": "errors", "CanonicalHuffmanDecoder": "huffman",
    "HuffmanTable": "huffman", "DistanceAccumulator": "distance", "RepeatExpander": "repeat",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
