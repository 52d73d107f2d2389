"""poscodec reference codec: the executable specification of the decoder hardware.

The public API (the CLI is a thin layer over it):

- :func:`load_model`, :func:`quantize`, :func:`dequantize`
- :func:`compress` (float tensors), :func:`compress_integers` (lossless on given integers),
  :func:`decompress`, :func:`inspect`, :func:`encode_integers`
- :func:`sw_codec.report.report` (bits per weight of every mode and baseline)
- the decoder stages, named as in ``hw/``: :class:`CanonicalHuffmanDecoder`,
  :class:`DistanceAccumulator`, :class:`RepeatExpander`
- :class:`FormatError`, the one exception malformed input raises
"""

from .codec import compress, compress_integers, decompress, encode_integers, inspect
from .distance import DistanceAccumulator
from .errors import FormatError
from .huffman import CanonicalHuffmanDecoder, HuffmanTable
from .models import ModelError, load_model
from .quantize import dequantize, quantize
from .repeat import RepeatExpander

__all__ = [
    "compress", "compress_integers", "decompress", "encode_integers", "inspect", "load_model", "quantize",
    "dequantize", "FormatError", "ModelError", "CanonicalHuffmanDecoder", "HuffmanTable", "DistanceAccumulator",
    "RepeatExpander",
]
