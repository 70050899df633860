#!/usr/bin/env bash
# The Pi's platform, checked before a Pi: Debian bookworm arm64 (what Raspberry Pi OS Bookworm is
# built on) under qemu-user, with PyPI's real aarch64 wheels. Checks, each against this machine:
#   (a) model parity on 300 validation grooves, fp32 to float rounding and int8 within the
#       quantization noise of the two machines' integer kernels (deploy/aarch64/parity.py);
#   (b) `grooverack sim` renders the same hits per output, at the same times (to 1 ms);
#   (c) the hardware-free tests (engine, model runner, drivers over emulators, config, boards,
#       calibration maths, state, layout) pass.
# Needs: qemu-user-static, mmdebstrap, unshare (util-linux), root (a private mount namespace in
# which a Pi 4 /proc/cpuinfo is bound: onnxruntime reads it at import and crashes on an x86 one).
# The rootfs, the wheels and the unpacked site folder are cached in .cache/aarch64/ (git-ignored).
# Speed under qemu means nothing; only correctness is checked.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
CPUINFO=$REPO/deploy/aarch64/pi4-cpuinfo  # a Raspberry Pi 4's /proc/cpuinfo, bound over the real one
PY=${PYTHON:-$REPO/.venv/bin/python}
CACHE=$REPO/.cache/aarch64
WORK=$CACHE/work
mkdir -p "$CACHE" "$WORK"

for tool in qemu-aarch64-static mmdebstrap unshare; do
  command -v "$tool" >/dev/null || { echo "aarch64 check: $tool missing (apt: qemu-user-static mmdebstrap util-linux)"; exit 1; }
done
if ! unshare -m true 2>/dev/null; then
  echo "aarch64 check SKIPPED: no private mount namespace here (unshare -m needs root/CAP_SYS_ADMIN)"
  exit 0
fi

ROOT=$CACHE/rootfs
if [ ! -x "$ROOT/usr/bin/python3.11" ]; then
  rm -rf "$ROOT"
  mmdebstrap --quiet --variant=extract --arch=arm64 \
    --include=python3.11,libpython3.11-stdlib,python3-minimal,libstdc++6,libgomp1,zlib1g,libexpat1,libffi8,libssl3 \
    bookworm "$ROOT" http://deb.debian.org/debian
fi

REQS="numpy onnxruntime>=1.17,!=1.21.* mido smbus2 onnx pytest hypothesis"
STAMP="$CACHE/site/.reqs"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$REQS" ]; then
  rm -rf "$CACHE/wheels" "$CACHE/site"
  # shellcheck disable=SC2086
  "$PY" -m pip download -q --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 \
    --platform manylinux2014_aarch64 -d "$CACHE/wheels" $REQS
  mkdir -p "$CACHE/site"
  for wheel in "$CACHE"/wheels/*.whl; do
    "$PY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$wheel" "$CACHE/site"
  done
  echo "$REQS" > "$STAMP"
fi

arm() {  # run python3.11 of the arm64 userland with the package and the aarch64 wheels
  # shellcheck disable=SC2016  # $0 and $@ belong to the inner shell
  unshare -m sh -c 'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$CPUINFO" \
    env PYTHONPATH="$CACHE/site:$REPO/firmware:$REPO" PYTHONDONTWRITEBYTECODE=1 \
    qemu-aarch64-static -cpu cortex-a72 -L "$ROOT" "$ROOT/usr/bin/python3.11" "$@"
}

echo "== aarch64: $(arm -c 'import platform, numpy, onnxruntime; print(platform.machine(), "numpy", numpy.__version__, "onnxruntime", onnxruntime.__version__)')"
status=0

echo "== (a) model parity"
if "$PY" deploy/aarch64/parity.py dump "$WORK/grooves.npz"; then
  for variant in fp32 int8; do
    "$PY" deploy/aarch64/parity.py --variant $variant run "$WORK/grooves.npz" "$WORK/host-$variant.npz"
    arm deploy/aarch64/parity.py --variant $variant run "$WORK/grooves.npz" "$WORK/arm-$variant.npz"
  done
  "$PY" deploy/aarch64/parity.py --variant fp32 compare "$WORK/host-fp32.npz" "$WORK/arm-fp32.npz" || status=1
  "$PY" deploy/aarch64/parity.py --variant int8 compare "$WORK/host-int8.npz" "$WORK/arm-int8.npz" \
    --fp32 "$WORK/host-fp32.npz" "$WORK/arm-fp32.npz" || status=1
else
  echo "(a) SKIPPED: no Groove MIDI Dataset validation split here"
fi

echo "== (b) grooverack sim, the same render on both"
# fp32: the same hits at the same times; int8: reported (the two machines' integer kernels round
# differently, so a few hit decisions move and the rest of the render follows, see (a))
for variant in fp32 int8; do
  rm -rf "$WORK/render-host-$variant" "$WORK/render-arm-$variant"
  "$PY" -m grooverack sim --seed 0 --bars 8 -q --set model.variant=$variant --out "$WORK/render-host-$variant"
  arm -m grooverack sim --seed 0 --bars 8 -q --set model.variant=$variant --out "$WORK/render-arm-$variant"
  strict=$([ "$variant" = fp32 ] && echo 1 || echo 0)
  "$PY" deploy/aarch64/compare_renders.py "$WORK/render-host-$variant/outputs.csv" \
    "$WORK/render-arm-$variant/outputs.csv" "$variant" "$strict" || status=1
done

echo "== (c) hardware-free tests on aarch64"
arm -m pytest -q -p no:cacheprovider -o addopts="" \
  tests/engine/test_engine.py tests/engine/test_clock.py tests/engine/test_groove.py \
  tests/engine/test_pattern.py tests/engine/test_player.py tests/engine/test_generator.py \
  tests/model/test_sampling.py tests/model/test_model_runner.py tests/drivers/test_drivers_*.py \
  tests/emulators \
  tests/config/test_config.py tests/boards tests/state/test_state.py tests/test_layout.py \
  tests/sim/test_patch.py tests/backends/test_panel.py || status=1

[ "$status" -eq 0 ] && echo "aarch64 check: passed" || echo "aarch64 check: FAILED"
exit "$status"
