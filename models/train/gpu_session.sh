#!/usr/bin/env bash
# One GPU session (~8 minutes on one H100): what 2 CPU cores cannot train in a session.
#   - the full DMSL variant (the paper's widths), fc-mse (the paper's structure) and
#     heatmap-wing, both scored on the held-out split, plain and with flip averaging;
#   - the lite heatmap-wing on the long schedule (120 epochs) and at twice lite's widths
#     (heatmap-wing-mid, 60 epochs), brought back to be scored on the CPU: unpack
#     OUT_DIR/results.tgz into models/train/runs/ and run landmark_variants.sh NAME.
# Same train.py, same split and sample pool (same seed) as the CPU runs in landmark_variants.sh.
#
#   models/train/gpu_session.sh DATA_DIR OUT_DIR     # e.g. .gpu/faces-300w-dev "$OUT"
#   SMOKE=1 models/train/gpu_session.sh …            # minutes on a CPU: checks the script, not the models
set -uo pipefail
DATA=$(realpath "$1") || exit 2
OUT=$(realpath "$2") || exit 2
cd "$(dirname "$0")"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
RUNS=runs
small=() eval_small=()
if [ -n "${SMOKE:-}" ]; then
    RUNS=runs/smoke
    small=(--limit 40 --pool-passes 2 --stage1-epochs 1 --stage2-epochs 1 --epochs 1 --stage2-passes 1)
    eval_small=(--limit 3)
fi
# Whatever finished comes back, also when a step fails.
trap 'cd "$RUNS" && tar czf "$OUT/results.tgz" --ignore-failed-read */train_log.jsonl */held_out*.json \
    */head.json */train_args.json heatmap-wing-*/landmark/final.pt; ls -la "$OUT"' EXIT
nvidia-smi -L || true
$PY -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())'

run() { # NAME TRAIN-ARGS…: a training, stopped after 6 minutes (its checkpoints let a rerun resume)
    local name=$1
    shift
    timeout 360 $PY train.py --data "$DATA" --threads 2 --out "$RUNS/$name" "$@" "${small[@]}" >"$OUT/$name.log" 2>&1
}
$PY train.py --data "$DATA" --out "$RUNS/pool" --pool-only --threads 16 "${small[@]}" || exit 1
# The four trainings share the GPU; none needs another's output until export.
run full-fc-mse --variant full &
run full-heatmap-wing --variant full --models landmark --head heatmap --loss wing &
run heatmap-wing-long --models landmark --head heatmap --loss wing --epochs 120 &
run heatmap-wing-mid --variant mid --models landmark --head heatmap --loss wing --epochs 60 &
wait
mkdir -p "$RUNS/full-heatmap-wing/boundary"
cp "$RUNS/full-fc-mse/boundary/final.pt" "$RUNS/full-heatmap-wing/boundary/final.pt"

# Export and score the full variant here (it is 190 MB a model: too big to bring back).
for run in full-fc-mse full-heatmap-wing; do
    $PY export.py --variant full --run "$RUNS/$run" --out "$RUNS/$run/onnx"
    $PY export.py --variant full --run "$RUNS/$run" --out "$RUNS/$run/onnx" --suffix=-tta --flip-tta
    for tta in "" "-tta"; do
        $PY evaluate.py --data "$DATA" --models "$RUNS/$run/onnx" --variant "full$tta" --split held_out \
            "${eval_small[@]}" --threads 4 --json "$RUNS/$run/held_out$tta.json" >/dev/null &
    done
done
wait

# Speed of one boundary + landmark pair in PyTorch on this GPU (fp32, TF32 allowed).
$PY - <<'PY' | tee "$OUT/gpu-speed.txt"
import sys, time, torch
if not torch.cuda.is_available():
    sys.exit("no GPU: speed not measured")
from dmsl_model import DMSL, OUTPUTS, VARIANTS
torch.backends.cudnn.benchmark = True
for variant in ("lite", "full"):
    nets = [DMSL(VARIANTS[variant], OUTPUTS[k]).cuda().eval() for k in ("boundary", "landmark")]
    for n in (1, 32):
        x = torch.rand(n, 1, 128, 128, device="cuda")
        with torch.no_grad():
            for _ in range(10):
                [net(x) for net in nets]
            torch.cuda.synchronize()
            t0, reps = time.time(), 50
            for _ in range(reps):
                [net(x) for net in nets]
            torch.cuda.synchronize()
        print(f"{variant} batch {n}: {reps * n / (time.time() - t0):.0f} pairs/s")
PY
