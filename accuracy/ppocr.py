"""PP-OCRv4 text recognition and detection (rapidocr-onnxruntime's graphs) on rendered text.

Ground truth comes by construction: lines of English news text (gensim's ``lee_background.cor``)
are drawn with the DejaVu fonts that matplotlib ships, in several fonts and sizes, black on white.

- Recognition: one line per image, cut to the text plus a margin, resized to height 48 and
  normalized as rapidocr does; greedy CTC decoding with the dictionary stored in the graph's
  metadata. Metrics: exact match (ends stripped) and character error rate.
- Detection: pages of lines at known boxes; the DB post-processing of rapidocr (threshold 0.3,
  2x2 dilation, box score >= 0.5, unclip ratio 1.6) on axis-aligned boxes of the connected
  components. Metrics: precision and recall at IoU >= 0.5.

The graphs keep every weight in a Constant node; those are what is replaced.
"""

from __future__ import annotations

import random
from functools import cache

import numpy as np

from sw_codec.models import bundled_model

from . import data, metrics
from .onnx_graph import load_graph, session
from .protocol import Protocol

__all__ = ["REC", "DET", "recognize", "detect", "rec_lines", "det_pages", "render_line"]

RUNTIME = (("onnxruntime", "onnxruntime"), ("PIL", "pillow"), ("matplotlib", "matplotlib"))
FONTS = ("DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "DejaVuSans-Bold", "DejaVuSerif-Italic")
REC_SIZES = (20, 28, 36)
REC_HEIGHT = 48
REC_LINES = {"fast": 10, "full": 40}
DET_PAGES = {"fast": 1, "full": 3}
DET_SIZE = 736                      # rapidocr's limit_side_len; a multiple of 32
DET_LINES = 12
DET_FONT_SIZES = (12, 14, 16, 20, 24, 28)
DET_NOISE = 8.0                     # standard deviation of the background noise, in gray levels
DET_THRESH, DET_BOX_THRESH, DET_UNCLIP = 0.3, 0.5, 1.6


def _texts(count: int, seed: int, max_words: int = 7) -> list[str]:
    """``count`` runs of 3 to ``max_words`` consecutive words of the corpus, at seeded places."""
    words = " ".join(data.corpus_lines()).split()
    rng = random.Random(seed)
    texts, pos = [], 0
    while len(texts) < count:
        n = rng.randint(3, max_words)
        texts.append(" ".join(words[pos:pos + n]))
        pos += n + rng.randint(5, 60)
    return texts


@cache
def _font(name: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(data.dejavu_fonts()[name]), size)


def render_line(text: str, font: str, size: int):
    """A grayscale PIL image of ``text``, black on white, with a margin of a quarter of ``size``."""
    from PIL import Image, ImageDraw

    f = _font(font, size)
    x0, y0, x1, y1 = f.getbbox(text)
    margin = size // 4
    image = Image.new("L", (x1 - x0 + 2 * margin, y1 - y0 + 2 * margin), 255)
    ImageDraw.Draw(image).text((margin - x0, margin - y0), text, font=f, fill=0)
    return image


def _normalize(gray: np.ndarray) -> np.ndarray:
    """uint8 grayscale (H, W) -> float32 (3, H, W) in [-1, 1], as rapidocr's mean 0.5, std 0.5."""
    x = (gray.astype(np.float32) / 255.0 - 0.5) / 0.5
    return np.repeat(x[None], 3, axis=0)


# ---- Recognition ----------------------------------------------------------------------------

def rec_lines(tier: str) -> dict:
    """The recognition inputs: rendered lines (fonts and sizes cycled) and their texts."""
    from PIL import Image

    texts = _texts(REC_LINES[tier], seed=0)
    images = []
    for k, text in enumerate(texts):
        im = render_line(text, FONTS[k % len(FONTS)], REC_SIZES[k % len(REC_SIZES)])
        width = int(np.ceil(REC_HEIGHT * im.width / im.height))
        images.append(_normalize(np.asarray(im.resize((width, REC_HEIGHT), Image.BILINEAR))))
    return {"texts": texts, "images": images}


@cache
def _rec_graph():
    return load_graph(bundled_model("ppocr-rec"))


def _characters() -> list[str]:
    meta = {p.key: p.value for p in _rec_graph().metadata_props}
    return ["<blank>"] + meta["character"].split("\n") + [" "]


def recognize(weights: dict, inputs: dict) -> dict:
    """The text of each line by greedy CTC decoding, and the raw per-frame probabilities."""
    sess = session(_rec_graph(), weights)
    chars = _characters()
    texts, probs = [], []
    for x in inputs["images"]:
        p = sess.run(None, {"x": x[None]})[0][0]
        idx = p.argmax(1)
        keep = np.r_[True, idx[1:] != idx[:-1]] & (idx != 0)
        texts.append("".join(chars[i] for i in idx[keep]))
        probs.append(p)
    return {"texts": texts, "probs": probs}


def _score_rec(outputs: dict, inputs: dict, reference: dict) -> dict:
    pred = [t.strip() for t in outputs["texts"]]
    return {
        "exact_match": float(np.mean([p == t for p, t in zip(pred, inputs["texts"])])),
        "cer": metrics.char_error_rate(pred, inputs["texts"]),
        "same_text_as_float": float(np.mean([a == b for a, b in zip(outputs["texts"], reference["texts"])])),
        "output_cosine": float(np.mean([metrics.cosine_rows(a[None], b[None])[0]
                                        for a, b in zip(outputs["probs"], reference["probs"])])),
    }


REC = Protocol(
    name="ppocr-rec", model="ppocr-rec",
    description="PP-OCRv4 rec in onnxruntime, Constant nodes replaced; lines of news text rendered in DejaVu fonts",
    runtime=RUNTIME, data=("gensim",),
    task_metrics=("exact_match", "cer"), agreement_metrics=("same_text_as_float", "output_cosine"),
    inputs=rec_lines, run=recognize, score=_score_rec)


# ---- Detection ------------------------------------------------------------------------------

def det_pages(tier: str) -> dict:
    """Pages of ``DET_LINES`` lines each, with the true box ``(x0, y0, x1, y1)`` of every line: from
    the first to the last inked column, and from the font's ascent to its descent. Sizes from 12
    to 28 pixels, ink from black to mid gray on a light, noisy background (seeded)."""
    from PIL import Image, ImageDraw

    rng = random.Random(1)
    noise = np.random.default_rng(1)
    texts = iter(_texts(DET_PAGES[tier] * DET_LINES * 2, seed=1, max_words=8))
    pages, boxes = [], []
    for _ in range(DET_PAGES[tier]):
        page = Image.new("L", (DET_SIZE, DET_SIZE), rng.randint(200, 255))
        draw = ImageDraw.Draw(page)
        truth, y = [], 24
        for k in range(DET_LINES):
            size = rng.choice(DET_FONT_SIZES)
            font = _font(FONTS[(len(boxes) + k) % len(FONTS)], size)
            text = next(texts)
            while font.getbbox(text)[2] > DET_SIZE - 80 and " " in text:
                text = text.rsplit(" ", 1)[0]
            x = rng.randint(24, 60)
            x0, _, x1, _ = font.getbbox(text)
            ascent, descent = font.getmetrics()
            draw.text((x, y), text, font=font, fill=rng.randint(0, 120))
            truth.append((x + x0, y, x + x1, y + ascent + descent))     # the ink across, the line down
            y += int(size * rng.uniform(1.9, 2.3))
        gray = np.asarray(page, np.float32) + noise.normal(0, DET_NOISE, (DET_SIZE, DET_SIZE))
        pages.append(_normalize(np.clip(np.rint(gray), 0, 255).astype(np.uint8)))
        boxes.append(truth)
    return {"pages": pages, "boxes": boxes}


def _components(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes ``(x0, y0, x1, y1)`` (exclusive ends) of the 8-connected components of
    ``mask``, by union-find over the runs of each row."""
    runs, parent = [], []

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    prev = []
    for y, row in enumerate(mask):
        edges = np.flatnonzero(np.diff(np.r_[0, row.astype(np.int8), 0]))
        cur = []
        for start, end in zip(edges[::2], edges[1::2]):
            i = len(runs)
            runs.append((y, start, end))
            parent.append(i)
            for j in prev:                         # 8-connected: runs touching diagonally join
                _, s, e = runs[j]
                if s <= end and start <= e:
                    parent[find(i)] = find(j)
            cur.append(i)
        prev = cur
    boxes = {}
    for i, (y, s, e) in enumerate(runs):
        r = find(i)
        b = boxes.get(r, (s, y, e, y + 1))
        boxes[r] = (min(b[0], s), min(b[1], y), max(b[2], e), max(b[3], y + 1))
    return list(boxes.values())


def db_boxes(prob: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Text boxes from a DB probability map (rapidocr's post-processing on axis-aligned boxes)."""
    mask = prob > DET_THRESH
    mask[1:] |= mask[:-1].copy()                      # dilation by a 2x2 square, as rapidocr's use_dilation
    mask[:, 1:] |= mask[:, :-1].copy()
    found = []
    for x0, y0, x1, y1 in _components(mask):
        w, h = x1 - x0, y1 - y0
        if min(w, h) < 3 or prob[y0:y1, x0:x1].mean() < DET_BOX_THRESH:
            continue
        d = w * h * DET_UNCLIP / (2 * (w + h))       # the polygon offset of DB's unclip
        found.append((max(x0 - d, 0), max(y0 - d, 0), min(x1 + d, prob.shape[1]), min(y1 + d, prob.shape[0])))
    return found


@cache
def _det_graph():
    return load_graph(bundled_model("ppocr-det"))


def detect(weights: dict, inputs: dict) -> dict:
    """The probability map and the boxes found on each page."""
    sess = session(_det_graph(), weights)
    maps = [sess.run(None, {"x": page[None]})[0][0, 0] for page in inputs["pages"]]
    return {"maps": maps, "boxes": [db_boxes(m) for m in maps]}


def _score_det(outputs: dict, inputs: dict, reference: dict) -> dict:
    matched = sum(metrics.match_boxes(f, t) for f, t in zip(outputs["boxes"], inputs["boxes"]))
    found = sum(len(f) for f in outputs["boxes"])
    truth = sum(len(t) for t in inputs["boxes"])
    same = [(a > DET_THRESH, b > DET_THRESH) for a, b in zip(outputs["maps"], reference["maps"])]
    return {
        "recall": matched / truth,
        "precision": matched / found if found else 0.0,
        "true_boxes": truth, "found_boxes": found, "matched_boxes": matched,
        "map_iou_with_float": float(sum((a & b).sum() for a, b in same) / max(sum((a | b).sum() for a, b in same), 1)),
    }


DET = Protocol(
    name="ppocr-det", model="ppocr-det",
    description="PP-OCRv4 det in onnxruntime, Constant nodes replaced; rendered pages with known line boxes",
    runtime=RUNTIME, data=("gensim",),
    task_metrics=("recall", "precision"), agreement_metrics=("map_iou_with_float",),
    inputs=det_pages, run=detect, score=_score_det)
