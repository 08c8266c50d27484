"""The face detector as the daemon runs it (`src/detect/`), for the Python side: measuring
detector boxes on labelled faces, building training crops from them, and checking the Rust
decoder against OpenCV's FaceDetectorYN.

YuNet (models/face-yunet-2023mar.onnx) takes BGR 0-255 in NCHW at a size whose sides are
multiples of 32. The frame is scaled to fit that size (aspect kept), placed top-left and
padded with black, so a detection maps back by dividing by the scale. Per stride s in
(8, 16, 32), anchor (row r, column c) gives score sqrt(cls * obj), box centre
((c + dx) s, (r + dy) s), size (exp(lw) s, exp(lh) s) and five keypoints ((c + kx) s,
(r + ky) s): right eye, left eye, nose tip, right and left mouth corner (the subject's).
Boxes above the score threshold go through greedy NMS (IoU), best first.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "face-yunet-2023mar.onnx"
STRIDES = (8, 16, 32)


@dataclass
class Detection:
    box: np.ndarray  # x, y, w, h in source pixels (continuous coordinates)
    score: float
    keypoints: np.ndarray  # (5, 2) source pixels


class Detector:
    def __init__(self, width=640, height=480, score_threshold=0.6, nms_iou=0.3,
                 min_face=0.0, model=MODEL, threads=1):
        if width % 32 or height % 32:
            raise ValueError(f"detector input {width}x{height}: sides must be multiples of 32")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]
        self.width, self.height = width, height
        self.score_threshold, self.nms_iou, self.min_face = score_threshold, nms_iou, min_face

    def input(self, rgb: np.ndarray):
        """uint8 HxWx3 RGB -> (1x3xHxW float32 BGR canvas, scale)."""
        h, w = rgb.shape[:2]
        scale = min(self.width / w, self.height / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else rgb
        canvas = np.zeros((self.height, self.width, 3), np.float32)
        canvas[:nh, :nw] = resized[..., ::-1]
        return canvas.transpose(2, 0, 1)[None], scale

    def detect(self, rgb: np.ndarray) -> list:
        x, scale = self.input(rgb)
        out = dict(zip(self.names, self.session.run(None, {"input": x})))
        return self.decode(out, scale)

    def decode(self, out: dict, scale: float) -> list:
        boxes, scores, kps = [], [], []
        for s in STRIDES:
            cols = self.width // s
            cls, obj = out[f"cls_{s}"][0, :, 0], out[f"obj_{s}"][0, :, 0]
            score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
            keep = np.nonzero(score >= self.score_threshold)[0]
            if keep.size == 0:
                continue
            r, c = (keep // cols).astype(np.float32), (keep % cols).astype(np.float32)
            b = out[f"bbox_{s}"][0, keep]
            cx, cy = (c + b[:, 0]) * s, (r + b[:, 1]) * s
            bw, bh = np.exp(b[:, 2]) * s, np.exp(b[:, 3]) * s
            boxes.append(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1))
            k = out[f"kps_{s}"][0, keep].reshape(-1, 5, 2)
            kps.append(np.stack([(c[:, None] + k[..., 0]) * s, (r[:, None] + k[..., 1]) * s], axis=2))
            scores.append(score[keep])
        if not boxes:
            return []
        boxes, scores, kps = np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps)
        chosen = nms(boxes, scores, self.nms_iou)
        found = [Detection(boxes[i] / scale, float(scores[i]), kps[i] / scale) for i in chosen]
        return [d for d in found if max(d.box[2], d.box[3]) >= self.min_face]


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def nms(boxes, scores, threshold) -> list:
    """Greedy: best score first; drop every later box overlapping a kept one above threshold.
    Ties keep the earlier anchor (stable sort), as the Rust decoder does."""
    order = np.argsort(-scores, kind="stable")
    kept = []
    for i in order:
        if all(iou(boxes[i], boxes[j]) <= threshold for j in kept):
            kept.append(int(i))
    return kept
