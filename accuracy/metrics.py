"""The metrics of the accuracy protocols, in numpy: task metrics on true labels and agreement with float."""

from __future__ import annotations

import numpy as np

__all__ = ["logistic_regression", "cross_val_accuracy", "pearson", "spearman", "auc", "f1", "edit_distance",
           "char_error_rate", "iou", "match_boxes", "cosine_rows", "nearest_neighbours"]


def logistic_regression(x: np.ndarray, y: np.ndarray, c: float = 1.0, iterations: int = 50) -> np.ndarray:
    """Weights ``[w..., b]`` minimizing the log-loss plus ``||w||^2 / (2 c)`` (the intercept is not
    penalized), by Newton's method: the objective of scikit-learn's ``LogisticRegression(C=c)``."""
    x1 = np.hstack([x.astype(np.float64), np.ones((len(x), 1))])
    reg = np.eye(x1.shape[1]) / c
    reg[-1, -1] = 0.0
    w = np.zeros(x1.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x1 @ w)))
        grad = x1.T @ (p - y) + reg @ w
        hess = (x1 * (p * (1 - p))[:, None]).T @ x1 + reg + 1e-10 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def cross_val_accuracy(x: np.ndarray, y: np.ndarray, folds: int = 5, c: float = 1.0) -> float:
    """Accuracy of a logistic regression over ``folds`` folds; item ``i`` is in fold ``i % folds``."""
    fold = np.arange(len(y)) % folds
    correct = 0
    for k in range(folds):
        train, test = fold != k, fold == k
        w = logistic_regression(x[train], y[train], c)
        pred = (np.hstack([x[test], np.ones((test.sum(), 1))]) @ w) > 0
        correct += int((pred == y[test].astype(bool)).sum())
    return correct / len(y)


def pearson(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, np.float64), np.asarray(b, np.float64))[0, 1])


def _ranks(a) -> np.ndarray:
    """Ranks from 1, tied values given their mean rank."""
    _, inverse, counts = np.unique(np.asarray(a, np.float64), return_inverse=True, return_counts=True)
    last = np.cumsum(counts)                 # the rank of the last member of each group of ties
    return (last - (counts - 1) / 2)[inverse]


def spearman(a, b) -> float:
    return pearson(_ranks(a), _ranks(b))


def auc(scores, labels) -> float:
    """Area under the ROC curve: the chance that a positive scores above a negative (ties count half)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    ranks = _ranks(scores)
    pos = labels.sum()
    neg = len(labels) - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def f1(pred, truth) -> float:
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    tp = int((pred & truth).sum())
    denom = int(pred.sum() + truth.sum())
    return 2 * tp / denom if denom else 1.0


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions of characters."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def char_error_rate(predicted: list[str], truth: list[str]) -> float:
    """Edit distance summed over lines, per character of the true text."""
    return sum(edit_distance(p, t) for p, t in zip(predicted, truth)) / max(sum(len(t) for t in truth), 1)


def iou(a, b) -> float:
    """Intersection over union of two boxes ``(x0, y0, x1, y1)``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def match_boxes(found: list, truth: list, threshold: float = 0.5) -> int:
    """How many true boxes are matched one-to-one by found boxes with IoU >= ``threshold`` (greedy,
    best IoU first)."""
    pairs = sorted(((iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_f, used_t = set(), set()
    for value, i, j in pairs:
        if value < threshold:
            break
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
    return len(used_t)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b``."""
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def nearest_neighbours(emb: np.ndarray) -> np.ndarray:
    """For each row, the index of the most cosine-similar other row."""
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-30)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(1)
