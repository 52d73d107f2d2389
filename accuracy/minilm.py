"""all-MiniLM-L6-v2 in numpy: the BERT encoder, mean pooling and normalization of sentence-transformers.

The weights are the bundled safetensors tensors by name (``@minilm``); the tokenizer is the
package's ``tokenizer.json`` run by ``tokenizers``. Inputs are cut at 256 word pieces (the model's
``max_seq_length``), batches padded to their longest input and masked.

The protocol, on gensim's test data (true labels from people):

- ``polarity_accuracy``: Pang and Lee's 200 movie-review snippets, a logistic regression on the
  embeddings, accuracy over 5 folds;
- ``lee_pearson``: the 50 documents of Lee et al. (2005), Pearson r of the embeddings' cosine
  similarity with the mean human similarity over the 1225 pairs;
- ``wordsim353_spearman``, ``simlex999_spearman`` (full tier): Spearman rho of the cosine of the
  two words' embeddings with the human scores;
- agreement with float: the mean cosine of each embedding with the float model's, and the share
  of polarity snippets whose nearest neighbour is the float model's.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from sw_codec.models import bundled_model

from . import data, metrics
from .protocol import Protocol

__all__ = ["PROTOCOL", "Tokenizer", "encode", "texts", "embed", "MAX_TOKENS", "LAYERS", "HEADS", "EPS"]

MAX_TOKENS = 256
LAYERS = 6
HEADS = 12
EPS = 1e-12


class Tokenizer:
    """The model's WordPiece tokenizer: ``ids(texts)`` gives padded ids and the attention mask."""

    def __init__(self):
        from tokenizers import Tokenizer as HFTokenizer

        self._tok = HFTokenizer.from_file(str(bundled_model("minilm").parent / "tokenizer.json"))
        self._tok.enable_truncation(MAX_TOKENS)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")      # to the longest of each batch

    def ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        enc = self._tok.encode_batch(list(texts))
        return (np.array([e.ids for e in enc], dtype=np.int64),
                np.array([e.attention_mask for e in enc], dtype=np.float32))


def _layer_norm(x, weight, bias):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * weight + bias


def _erf(x):
    # Abramowitz and Stegun 7.1.26: |error| < 1.5e-7, below float32's resolution of gelu's output.
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x * np.float32(1 / np.sqrt(2.0))))


def _forward(w: dict, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sentence embeddings (unit length) of a padded batch ``ids`` with attention ``mask``."""
    n, t = ids.shape
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    d = x.shape[-1]
    hd = d // HEADS
    bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]

    def dense(v, name):          # as one 2-D product: BLAS takes the transposed weight as it is
        out = v.reshape(-1, v.shape[-1]) @ w[name + ".weight"].T + w[name + ".bias"]
        return out.reshape(v.shape[:-1] + out.shape[-1:])

    def heads(v):
        return v.reshape(n, t, HEADS, hd).transpose(0, 2, 1, 3)

    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        q, k, v = (heads(dense(x, f"{p}attention.self.{m}")) for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(hd)) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        ctx = (scores / scores.sum(-1, keepdims=True)) @ v
        ctx = ctx.transpose(0, 2, 1, 3).reshape(n, t, d)
        x = _layer_norm(x + dense(ctx, p + "attention.output.dense"),
                        w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        h = dense(_gelu(dense(x, p + "intermediate.dense")), p + "output.dense")
        x = _layer_norm(x + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def encode(weights: dict, tokenizer: Tokenizer, texts: list[str], batch: int = 32) -> np.ndarray:
    """Unit-length float32 embeddings of ``texts``, shape (len(texts), 384).

    Texts are batched in order of length (less padding); the result is in the order given.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), weights["embeddings.word_embeddings.weight"].shape[1]), np.float32)
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        ids, mask = tokenizer.ids([texts[i] for i in idx])
        out[idx] = _forward(weights, ids, mask)
    return out


# ---- The protocol ---------------------------------------------------------------------------

LEE_DOCS = {"fast": 10, "full": 50}


def texts(tier: str) -> dict:
    """The protocol's texts and labels; ``fast`` takes every other polarity snippet (50 of each
    class) and the first 10 Lee documents, and no word pairs."""
    sentences, labels = data.polarity_sentences()
    if tier == "fast":
        sentences, labels = sentences[::2], labels[::2]
    docs, human = data.lee_documents()
    n = LEE_DOCS[tier]
    out = {"polarity": sentences, "polarity_labels": labels, "lee": docs[:n], "lee_human": human[:n, :n],
           "pairs": {}}
    if tier == "full":
        out["pairs"] = {name: data.word_pairs(name) for name in ("wordsim353", "simlex999")}
    return out


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    return Tokenizer()


def embed(weights: dict, inputs: dict) -> dict:
    """Embeddings of the polarity snippets, the Lee documents and the words of the word pairs."""
    tok = _tokenizer()
    words = sorted({w for pairs in inputs["pairs"].values() for a, b, _ in pairs for w in (a, b)})
    out = {"polarity": encode(weights, tok, inputs["polarity"]), "lee": encode(weights, tok, inputs["lee"])}
    out["words"] = dict(zip(words, encode(weights, tok, words))) if words else {}
    return out


def _score(outputs: dict, inputs: dict, reference: dict) -> dict:
    upper = np.triu_indices(len(inputs["lee"]), 1)
    lee = outputs["lee"] @ outputs["lee"].T
    result = {
        "polarity_accuracy": metrics.cross_val_accuracy(outputs["polarity"], inputs["polarity_labels"]),
        "lee_pearson": metrics.pearson(lee[upper], inputs["lee_human"][upper]),
    }
    for name, pairs in inputs["pairs"].items():
        w = outputs["words"]
        result[f"{name}_spearman"] = metrics.spearman([float(w[a] @ w[b]) for a, b, _ in pairs],
                                                      [s for _, _, s in pairs])
    both = [(outputs[k], reference[k]) for k in ("polarity", "lee")]
    result["cosine_to_float"] = float(np.concatenate([metrics.cosine_rows(a, b) for a, b in both]).mean())
    result["nn_agreement"] = float((metrics.nearest_neighbours(outputs["polarity"])
                                    == metrics.nearest_neighbours(reference["polarity"])).mean())
    return result


PROTOCOL = Protocol(
    name="minilm", model="minilm",
    description="all-MiniLM-L6-v2, a numpy BERT forward with tokenizers; gensim's test data "
                "(Pang-Lee polarity, Lee-50 similarity, WordSim353, SimLex-999)",
    runtime=(("tokenizers", "tokenizers"),), data=("gensim",),
    task_metrics=("polarity_accuracy", "lee_pearson", "wordsim353_spearman", "simlex999_spearman"),
    agreement_metrics=("cosine_to_float", "nn_agreement"),
    inputs=texts, run=embed, score=_score)
