#!/usr/bin/env python3
"""Scores spectrald's JSON lines against a multi-face session's truth
(`bench/multiface_session.py`): detection recall, false faces, per-face NME, track ids.

    spectrald replay target/multiface-heldout > target/multiface-heldout.jsonl
    python3 bench/multiface_score.py target/multiface-heldout target/multiface-heldout.jsonl

A detected face matches a true face when its box overlaps the true face's landmarks' box
with IoU >= 0.25 (the detector's box also covers the forehead: a perfect detection scores
about 0.65); each true face takes at most one detection (best IoU first). Reported: recall
over faces >= 48 px wide (and per size), false faces per frame without a face and per frame
overall, NME (outer eye corners, 300-W) of matched faces (mean, median, share > 0.08), and
identity switches (a true face whose matched track id changes within its scene).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

MATCH_IOU = 0.25


def iou(a, b):
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def nme(pred, truth):
    pred, truth = np.asarray(pred), np.asarray(truth)
    return float(np.linalg.norm(pred - truth, axis=1).mean() / np.linalg.norm(truth[36] - truth[45]))


def match(true_faces, found):
    """Greedy by IoU: (true index, found index) pairs."""
    pairs = sorted(((iou(t["box"], [f["box"][k] for k in "xywh"]), i, j)
                    for i, t in enumerate(true_faces) for j, f in enumerate(found)), reverse=True)
    used_t, used_f, out = set(), set(), []
    for overlap, i, j in pairs:
        if overlap < MATCH_IOU or i in used_t or j in used_f:
            continue
        used_t.add(i), used_f.add(j), out.append((i, j))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("session", type=Path)
    ap.add_argument("records", type=Path)
    ap.add_argument("--min-width", type=float, default=48.0)
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    truth = json.loads((args.session / "truth.json").read_text())["frames"]
    manifest = (args.session / "manifest.csv").read_text().splitlines()[1:]
    by_time = {int(line.split(",")[1]): line.split(",")[2] for line in manifest}
    records = [json.loads(line) for line in args.records.read_text().splitlines() if line.strip()]
    if len(records) != len(truth):
        print(f"warning: {len(records)} records for {len(truth)} frames", file=sys.stderr)
    counts = dict(faces=0, found=0, empty_frames=0, false_on_empty=0, false_all=0, frames=0)
    sizes = {"48-80": [0, 0], "80-130": [0, 0], "130-200+": [0, 0], "<48": [0, 0]}
    errors, last_track, switches = [], {}, 0
    for r in records:
        v = r["spectra"].get("visible")
        if v is None:
            continue
        file = by_time.get(v["captured_us"])
        faces = truth.get(file, [])
        found = v["faces"]
        counts["frames"] += 1
        pairs = match(faces, found)
        counts["false_all"] += len(found) - len(pairs)
        if not faces:
            counts["empty_frames"] += 1
            counts["false_on_empty"] += len(found)
        matched = dict(pairs)
        for i, t in enumerate(faces):
            w = t["box"][2]
            bucket = "<48" if w < args.min_width else "48-80" if w < 80 else "80-130" if w < 130 else "130-200+"
            sizes[bucket][0] += 1
            if w >= args.min_width:
                counts["faces"] += 1
            if i not in matched:
                continue
            sizes[bucket][1] += 1
            if w >= args.min_width:
                counts["found"] += 1
            f = found[matched[i]]
            if f.get("landmarks"):
                errors.append(nme(f["landmarks"], t["landmarks"]))
            if "track_id" in f:
                previous = last_track.get(t["track"])
                if previous is not None and previous != f["track_id"]:
                    switches += 1
                last_track[t["track"]] = f["track_id"]
    e = np.array(errors) if errors else np.array([np.nan])
    figures = dict(
        frames=counts["frames"],
        faces_48px_or_more=counts["faces"],
        recall=counts["found"] / max(counts["faces"], 1),
        recall_by_width={k: (v[1] / v[0] if v[0] else None, v[0]) for k, v in sizes.items()},
        frames_without_face=counts["empty_frames"],
        false_faces_per_empty_frame=counts["false_on_empty"] / max(counts["empty_frames"], 1),
        false_faces_per_frame=counts["false_all"] / max(counts["frames"], 1),
        matched_faces=len(errors),
        nme_mean=float(np.mean(e)),
        nme_median=float(np.median(e)),
        nme_over_008=float(np.mean(e > 0.08)),
        identity_switches=switches,
    )
    for k, v in figures.items():
        print(f"{k:30} {v:.4f}" if isinstance(v, float) else f"{k:30} {v}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
