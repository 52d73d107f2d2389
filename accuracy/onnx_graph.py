"""Running an ONNX graph with some of its weight tensors replaced.

A weight is an initializer or the tensor of a ``Constant`` node (PP-OCRv4's graphs hold all their
weights in Constant nodes), found by the name :func:`sw_codec.models.load_model` gives it: the
initializer's name or the Constant node's output. One thread per session: the machine is shared
and the runs are small.
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_graph", "session"]


def load_graph(path):
    import onnx

    return onnx.load(str(path))


def _replace(graph, weights: dict, done: set) -> None:
    from onnx import numpy_helper

    def swap(tensor, name):
        new = np.asarray(weights[name])
        old_shape = tuple(tensor.dims)
        if new.shape != old_shape:
            raise ValueError(f"weight {name!r}: shape {new.shape}, the graph has {old_shape}")
        dtype = numpy_helper.to_array(tensor).dtype
        tensor.CopyFrom(numpy_helper.from_array(new.astype(dtype), tensor.name))
        done.add(name)

    for t in graph.initializer:
        if t.name in weights:
            swap(t, t.name)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] in weights:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    swap(attr.t, node.output[0])
        for attr in node.attribute:
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                _replace(sub, weights, done)


def session(model, weights: dict | None = None):
    """An onnxruntime CPU session of ``model`` (an ``onnx.ModelProto``, left unchanged) with the
    tensors of ``weights`` (name -> array) in place of the graph's; every name must be found."""
    import onnxruntime as ort

    if weights:
        model = type(model).FromString(model.SerializeToString())
        done = set()
        _replace(model.graph, weights, done)
        unknown = set(weights) - done
        if unknown:
            raise ValueError(f"{len(unknown)} weights not in the graph, e.g. {sorted(unknown)[0]!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
