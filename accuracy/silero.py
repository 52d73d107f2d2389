"""Silero VAD: the bundled safetensors weights run in the op15 ONNX graph shipped beside them.

The package's ``silero_vad_16k.safetensors`` (what ``@silero-vad`` compresses) holds the same
tensors, in the same shapes, as the graph ``silero_vad_16k_op15.onnx``, under other names
(``NAMES``); they are substituted into the graph. The graph is run as silero's ``OnnxWrapper``
runs it: chunks of 512 samples at 16 kHz, each with the 64 samples before it, the LSTM state
carried from chunk to chunk; several streams go through at once as one batch.

Inputs: the speech clips of ``pytest-audioeval`` (several languages), joined with silences of
0.3 to 1.5 s, plus white noise at 20 dB SNR (against the mean power of the speech frames). A
512-sample frame is speech when its clean energy is within 35 dB of its clip's loudest frame.
Metric: frame F1 of ``p > 0.5``; agreement: the share of frames decided as the float model does.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from sw_codec.models import bundled_model

from . import data, metrics
from .onnx_graph import load_graph, session
from .protocol import Protocol

__all__ = ["PROTOCOL", "NAMES", "FRAME", "streams", "speech_probability"]

FRAME = 512
CONTEXT = 64
RATE = 16000
SNR_DB = 20.0
SPEECH_DB = 35.0                 # a frame within this many dB of its clip's loudest frame is speech
STREAMS = {"fast": 2, "full": 4}
CLIPS = {"fast": 8, "full": None}
GRAPH = "silero_vad_16k_op15.onnx"

#: safetensors name -> the op15 graph's initializer name.
NAMES = {"stft_conv.weight": "model.stft.forward_basis_buffer",
         **{f"conv{i + 1}.{p}": f"model.encoder.{i}.reparam_conv.{p}" for i in range(4) for p in ("weight", "bias")},
         **{f"lstm_cell.{p}": f"model.decoder.rnn.{p}" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
         "final_conv.weight": "model.decoder.decoder.2.weight", "final_conv.bias": "model.decoder.decoder.2.bias"}


def streams(tier: str) -> dict:
    """Noisy speech streams (batch x samples) and the true speech label of each frame."""
    rng = np.random.default_rng(0)
    clips = data.speech_clips()[:CLIPS[tier]]
    count = STREAMS[tier]
    parts, labels = [[] for _ in range(count)], [[] for _ in range(count)]
    for k, (_, x) in enumerate(clips):
        gap = np.zeros(int(rng.uniform(0.3, 1.5) * RATE) // FRAME * FRAME, np.float32)
        x = np.r_[x, np.zeros(-len(x) % FRAME, np.float32)]
        energy = 10 * np.log10((x.reshape(-1, FRAME) ** 2).mean(1) + 1e-12)
        parts[k % count] += [gap, x]
        labels[k % count] += [np.zeros(len(gap) // FRAME, bool), energy > energy.max() - SPEECH_DB]
    length = max(sum(map(len, p)) for p in parts)
    clean = np.zeros((count, length), np.float32)
    truth = np.zeros((count, length // FRAME), bool)
    for s in range(count):
        a, b = np.concatenate(parts[s]), np.concatenate(labels[s])
        clean[s, :len(a)], truth[s, :len(b)] = a, b
    power = (clean[np.repeat(truth, FRAME, axis=1)] ** 2).mean()
    noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * np.float32(np.sqrt(power / 10 ** (SNR_DB / 10)))
    return {"audio": noisy, "speech": truth}


@cache
def _graph():
    return load_graph(bundled_model("silero-vad").parent / GRAPH)


def speech_probability(weights: dict, inputs: dict) -> dict:
    unknown = set(weights) - set(NAMES)
    if unknown:
        raise ValueError(f"not a Silero VAD weight: {sorted(unknown)[0]!r}")
    sess = session(_graph(), {NAMES[k]: v for k, v in weights.items()})
    audio = inputs["audio"]
    batch = len(audio)
    state = np.zeros((2, batch, 128), np.float32)
    context = np.zeros((batch, CONTEXT), np.float32)
    rate = np.array(RATE, np.int64)
    probs = []
    for start in range(0, audio.shape[1], FRAME):
        chunk = np.concatenate([context, audio[:, start:start + FRAME]], axis=1)
        p, state = sess.run(None, {"input": chunk, "state": state, "sr": rate})
        probs.append(p[:, 0])
        context = chunk[:, -CONTEXT:]
    return {"prob": np.stack(probs, axis=1)}


def _score(outputs: dict, inputs: dict, reference: dict) -> dict:
    speech = outputs["prob"] > 0.5
    return {
        "frame_f1": metrics.f1(speech, inputs["speech"]),
        "same_decision_as_float": float((speech == (reference["prob"] > 0.5)).mean()),
        "prob_mae": float(np.abs(outputs["prob"] - reference["prob"]).mean()),
    }


PROTOCOL = Protocol(
    name="silero-vad", model="silero-vad",
    description="Silero VAD: the safetensors weights in the op15 ONNX graph (onnxruntime); pytest-audioeval "
                "speech joined with silences, 20 dB SNR noise, labels from the clean energy",
    runtime=(("onnxruntime", "onnxruntime"),), data=("pytest-audioeval",),
    task_metrics=("frame_f1",), agreement_metrics=("same_decision_as_float", "prob_mae"),
    inputs=streams, run=speech_probability, score=_score)
