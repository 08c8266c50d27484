#!/usr/bin/env bash
# The landmark-accuracy variants, side by side (models/dmsl-lite.md, "Variants"): each is
# trained on the training split, exported, and scored on the validation split (where the
# choice is made) and on the held-out split (reported, never used to choose).
# Resumable: rerun after an interruption and finished steps are skipped. A run trained on a
# GPU (gpu_session.sh: unpack its results.tgz into runs/) is only exported and scored here.
#
#   models/train/landmark_variants.sh [VARIANT…]      # default: all, in this order
set -euo pipefail
cd "$(dirname "$0")"
PY=${PY:-../../.cache/train/bin/python}
RUNS=runs

step() { # NAME TRAIN-ARGS…: train, export (plain and flip-averaged), evaluate
    local name=$1
    shift
    local run=$RUNS/$name
    if [ ! -f "$run/landmark/final.pt" ]; then
        $PY train.py --out "$run" "$@"
    fi
    # A landmark model trained elsewhere (gpu_session.sh) pairs with fc-mse's boundary model.
    if [ ! -f "$run/boundary/final.pt" ] && [ -f "$RUNS/fc-mse/boundary/final.pt" ]; then
        mkdir -p "$run/boundary"
        cp "$RUNS/fc-mse/boundary/final.pt" "$run/boundary/final.pt"
    fi
    if [ ! -f "$run/onnx/dmsl-landmark-lite.onnx" ]; then
        if [ -f "$run/boundary/final.pt" ]; then
            $PY export.py --run "$run" --out "$run/onnx"
            $PY export.py --run "$run" --out "$run/onnx" --suffix=-tta --flip-tta
        else
            # No boundary run here (runs/ is not kept): pair with the shipped boundary model.
            $PY export.py --run "$run" --out "$run/onnx" --models landmark
            $PY export.py --run "$run" --out "$run/onnx" --models landmark --suffix=-tta --flip-tta
            for suffix in "" -tta; do
                cp ../dmsl-boundary-lite.onnx "$run/onnx/dmsl-boundary-lite$suffix.onnx"
                sed "s/\"dmsl-boundary-lite\"/\"dmsl-boundary-lite$suffix\"/" ../dmsl-boundary-lite.json \
                    >"$run/onnx/dmsl-boundary-lite$suffix.json"
            done
        fi
    fi
    for split in val held_out; do
        for tta in "" "-tta"; do
            local report=$run/$split$tta.json
            if [ ! -f "$report" ]; then
                $PY evaluate.py --models "$run/onnx" --variant "lite$tta" --split "$split" --json "$report" >/dev/null
            fi
        done
    done
}

restart() { # NAME FROM EPOCHS LR THERMAL-SHARE [TRAIN-ARGS…]: a warm restart of run FROM's
    # heatmap landmark model (its weights, a fresh optimiser and schedule), fc-mse's boundary model
    step "$1" --models landmark --head heatmap --loss wing --epochs "$3" --lr "$4" \
        --thermal-share "$5" --init-from "$RUNS/$2" --boundary-from "$RUNS/fc-mse" "${@:6}"
}

onnx_restart() { # NAME EPOCHS LR THERMAL-SHARE [TRAIN-ARGS…]: a warm restart of the shipped
    # landmark model (models/dmsl-landmark-lite.onnx, read back by onnx_weights.py), no mask loss
    step "$1" --models landmark --head heatmap --loss wing --epochs "$2" --lr "$3" \
        --thermal-share "$4" --mask-weight 0 --init-from-onnx ../dmsl-landmark-lite.onnx "${@:5}"
}

soup() { # NAME RUN…: the shipped landmark model's weights averaged with these restarts' (soup.py)
    local name=$1
    shift
    if [ ! -f "$RUNS/$name/landmark/final.pt" ]; then
        $PY soup.py --out "$RUNS/$name" --onnx ../dmsl-landmark-lite.onnx --runs "${@/#/$RUNS/}"
    fi
    step "$name"
}

variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(fc-mse fc-wing heatmap-wing heatmap-wing-long)
for v in "${variants[@]}"; do
    case $v in
        # The paper's structure on detector crops: two stages, MSE.
        fc-mse) step fc-mse ;;
        # Same, wing loss for the FC head (small errors keep their gradient).
        fc-wing) step fc-wing --models landmark --loss wing --boundary-from "$RUNS/fc-mse" ;;
        # Points read from per-point heatmaps on the U-Net (soft-argmax), end to end.
        heatmap-wing) step heatmap-wing --models landmark --head heatmap --loss wing \
            --boundary-from "$RUNS/fc-mse" ;;
        # The same, a longer schedule.
        heatmap-wing-long) step heatmap-wing-long --models landmark --head heatmap --loss wing \
            --epochs 120 --boundary-from "$RUNS/fc-mse" ;;
        # Twice lite's widths for the landmark model (about 4x its cost), 60 epochs.
        heatmap-wing-mid) step heatmap-wing-mid --variant mid --models landmark --head heatmap --loss wing \
            --epochs 60 --boundary-from "$RUNS/fc-mse" ;;
        # A warm restart of the 120-epoch run (its weights, a fresh schedule at a quarter of
        # the learning rate), half the samples thermal-like instead of 35 %: the
        # thermal-like gap and the failure rate. 40 epochs, ~20 min on 2 cores.
        heatmap-wing-ft-t50) restart heatmap-wing-ft-t50 heatmap-wing-long 40 5e-4 0.5 ;;
        # A second restart from that one, two thirds thermal-like, 30 epochs.
        heatmap-wing-ft-t65) restart heatmap-wing-ft-t65 heatmap-wing-ft-t50 30 3e-4 0.65 ;;
        # A third restart, four fifths thermal-like, 30 epochs: the thermal-like gap again.
        heatmap-wing-ft-t80) restart heatmap-wing-ft-t80 heatmap-wing-ft-t65 30 3e-4 0.8 ;;
        # A fourth, thermal-like samples only, 20 epochs at a lower rate: how far the
        # thermal-like gap closes when visible faces are left out altogether.
        heatmap-wing-ft-t100) restart heatmap-wing-ft-t100 heatmap-wing-ft-t80 20 2e-4 1.0 ;;
        # A fifth, the same schedule with hard-example mining: each epoch the tenth of faces
        # with the highest loss when last seen come three more times (the failures are rare
        # poses: profiles, wide-open mouths).
        heatmap-wing-ft-hard) restart heatmap-wing-ft-hard heatmap-wing-ft-t100 20 2e-4 1.0 \
            --hard-share 0.1 --hard-repeat 3 ;;
        # A sixth, the same schedule with pose/expression balancing instead: the tenth of faces
        # whose shape is farthest from the mean shape (profiles, open mouths; fixed, not
        # loss-driven) come three more times each epoch.
        heatmap-wing-ft-rare) restart heatmap-wing-ft-rare heatmap-wing-ft-t100 20 2e-4 1.0 \
            --rare-share 0.1 --rare-repeat 3 ;;
        # From the shipped v2.2.0 model (its ONNX; the runs above are not kept): ft-rare's
        # schedule again, then the average of its weights with the shipped model's.
        onnx-rare) onnx_restart onnx-rare 20 2e-4 1.0 --rare-share 0.1 --rare-repeat 3 ;;
        soup-rare) soup soup-rare onnx-rare ;;
        # The same with hard-example mining instead, and the average of all three.
        onnx-hard) onnx_restart onnx-hard 20 2e-4 1.0 --hard-share 0.1 --hard-repeat 3 ;;
        soup-rare-hard) soup soup-rare-hard onnx-rare onnx-hard ;;
        *) echo "unknown variant $v" >&2; exit 2 ;;
    esac
done
