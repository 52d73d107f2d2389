"""YOLOv8n (NudeNet's ``320n.onnx``, a YOLOv8n detector of 18 classes) on scikit-image's faces.

Each 25x25 image of ``lfw_subset`` (100 faces from Labeled Faces in the Wild, 100 non-face
patches) goes in as NudeNet prepares an image: square, resized to 320x320 (bilinear), RGB in
[0, 1]. Its "face present" score is the best score of the two face classes (``FACE_FEMALE``,
``FACE_MALE``) over all candidate boxes. Metric: the AUC of that score against the labels; and
the agreement of the raw output (1 x 22 x 2100: boxes and class scores) with the float model's.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from sw_codec.models import bundled_model

from . import data, metrics
from .onnx_graph import load_graph, session
from .protocol import Protocol

__all__ = ["PROTOCOL", "SIZE", "FACE_CLASSES", "faces", "detect"]

SIZE = 320
FACE_CLASSES = (1, 12)          # FACE_FEMALE, FACE_MALE in NudeNet's label list
BATCH = 20
IMAGES = {"fast": 20, "full": 100}   # per class


def faces(tier: str) -> dict:
    """The first ``IMAGES[tier]`` faces and non-faces of lfw_subset, prepared for the model."""
    from PIL import Image

    images, labels = data.lfw_subset()
    n = IMAGES[tier]
    pick = np.r_[np.flatnonzero(labels == 1)[:n], np.flatnonzero(labels == 0)[:n]]
    x = np.empty((len(pick), 3, SIZE, SIZE), np.float32)
    for k, i in enumerate(pick):
        gray = Image.fromarray(np.rint(images[i] * 255).astype(np.uint8)).resize((SIZE, SIZE), Image.BILINEAR)
        x[k] = np.asarray(gray, np.float32)[None] / 255.0
    return {"images": x, "labels": labels[pick]}


@cache
def _graph():
    return load_graph(bundled_model("yolov8n"))


def detect(weights: dict, inputs: dict) -> dict:
    sess = session(_graph(), weights)
    x = inputs["images"]
    raw = np.concatenate([sess.run(None, {"images": x[i:i + BATCH]})[0] for i in range(0, len(x), BATCH)])
    return {"raw": raw, "face_score": raw[:, 4 + np.array(FACE_CLASSES), :].max(axis=(1, 2))}


def _score(outputs: dict, inputs: dict, reference: dict) -> dict:
    return {
        "face_auc": metrics.auc(outputs["face_score"], inputs["labels"]),
        "output_cosine": float(metrics.cosine_rows(outputs["raw"], reference["raw"]).mean()),
        "face_score_mae": float(np.abs(outputs["face_score"] - reference["face_score"]).mean()),
    }


PROTOCOL = Protocol(
    name="yolov8n", model="yolov8n",
    description="YOLOv8n (NudeNet 320n) in onnxruntime, initializers replaced; scikit-image lfw_subset, "
                "face present = best face-class score",
    runtime=(("onnxruntime", "onnxruntime"), ("PIL", "pillow")), data=("scikit-image",),
    task_metrics=("face_auc",), agreement_metrics=("output_cosine", "face_score_mae"),
    inputs=faces, run=detect, score=_score)
