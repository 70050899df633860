#!/usr/bin/env bash
# deploy/install.sh run for real on the Pi's userland, before a Pi: a Debian bookworm arm64 root
# (what Raspberry Pi OS Bookworm is built on), chrooted under qemu-user, with no network inside:
#
#   sudo deploy/aarch64/install_check.sh     CI runs it after check.sh: ~100 s with the root
#                                            cached, 8-9 minutes the first time on 2 cores
#
# In the chroot, as a person would on a Pi 4 (`/proc/device-tree/model` and `/proc/cpuinfo` say
# "Raspberry Pi 4", `/boot/firmware/config.txt` is there, no raspi-config):
#   sudo deploy/install.sh --no-start --wheel grooverack-*.whl --find-links WHEELS
# with the repository's wheel built here and PyPI's aarch64 wheels (+ the spidev and RPi.GPIO
# sources, compiled in the chroot as on a Pi) downloaded here. Then checks: the service user and
# its groups, the venv with grooverack from the wheel (not the checkout), the bus and GPIO
# packages, config, data directory, SPI/I2C enabled in config.txt, the unit installed and enabled
# and `systemd-analyze verify` clean on it (the chroot's arm64 systemd), `grooverack doctor
# --board sim` (the model loads) and `grooverack sim --bars 2` as the service user, and a second
# install.sh run that changes nothing (idempotent). `grooverack doctor` on the real board is
# printed: it names what only a Pi has.
#
# Needs root (chroot, a private mount namespace), qemu-user-static, mmdebstrap and arch-test (apt),
# and binfmt_misc: an aarch64 entry is registered for the run (flag F, so it works in the chroot)
# and removed afterwards when there was none. The pristine root is cached as
# .cache/aarch64/install-rootfs.tar (about 600 MB, 6 minutes to build once), the wheels in
# .cache/aarch64/install-wheels; each run unpacks a fresh root.
# shellcheck disable=SC2016  # the single-quoted commands are expanded by the chroot's shell
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
CPUINFO=$REPO/deploy/aarch64/pi4-cpuinfo  # a Raspberry Pi 4's /proc/cpuinfo, bound over the real one
PY=${PYTHON:-$REPO/.venv/bin/python}
CACHE=$REPO/.cache/aarch64
TAR=$CACHE/install-rootfs.tar
WHEELS=$CACHE/install-wheels
ROOT=$CACHE/install-root
# install.sh's apt packages (all present, so it installs none: no network in the chroot), systemd
# for systemd-analyze and the unit's targets, passwd/adduser for the user, libgomp1 for onnxruntime
PACKAGES=python3,python3-venv,python3-dev,python3-pip,build-essential,rsync,i2c-tools,systemd,adduser,passwd,ca-certificates,libgomp1
REQS="pip setuptools>=77 wheel numpy onnxruntime>=1.17,!=1.21.* mido smbus2 soundfile>=0.12 gpiod>=2.1"
SDISTS="spidev RPi.GPIO"
MODEL="Raspberry Pi 4 Model B Rev 1.5"

say() { printf '== %s\n' "$*"; }
fail=0
check() {  # check "what" command...: one line per check, the run fails at the end if any did
  local what="$1"
  shift
  if "$@"; then
    printf '  ok    %s\n' "$what"
  else
    printf '  FAIL  %s\n' "$what"
    fail=1
  fi
}

[ "$(id -u)" -eq 0 ] || { echo "install check: run as root (chroot, mount namespace)"; exit 1; }
for tool in qemu-aarch64-static mmdebstrap unshare chroot; do
  command -v "$tool" >/dev/null || { echo "install check: $tool missing (apt: qemu-user-static mmdebstrap arch-test)"; exit 1; }
done

# binfmt_misc: the kernel hands aarch64 programs to qemu, also inside the chroot (flag F: the
# interpreter is opened now, not looked up in the chroot)
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/register" ] && ! mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null; then
  echo "install check SKIPPED: binfmt_misc cannot be mounted here (a container without it?)"
  exit 0
fi
ENTRY=""
if ! grep -qs '^enabled' "$BINFMT/qemu-aarch64" && ! grep -qs '^enabled' "$BINFMT/grooverack-aarch64"; then
  ENTRY=$BINFMT/grooverack-aarch64
  if ! printf '%s\n' ':grooverack-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
      >"$BINFMT/register" 2>/dev/null; then
    echo "install check SKIPPED: cannot register qemu-aarch64 with binfmt_misc here"
    exit 0
  fi
fi
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ -n "$ENTRY" ] && [ -e "$ENTRY" ]; then echo -1 >"$ENTRY"; fi
}
trap cleanup EXIT

STAMP=$CACHE/install-rootfs.packages
if [ ! -f "$TAR" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$PACKAGES" ]; then
  say "building the arm64 root (mmdebstrap minbase, once)"
  command -v arch-test >/dev/null || { echo "install check: arch-test missing (apt install arch-test)"; exit 1; }
  mmdebstrap --quiet --variant=minbase --arch=arm64 --format=tar --include="$PACKAGES" \
    bookworm "$TAR.partial" http://deb.debian.org/debian
  mv "$TAR.partial" "$TAR"
  echo "$PACKAGES" >"$STAMP"
fi

WSTAMP=$WHEELS/.reqs
if [ ! -f "$WSTAMP" ] || [ "$(cat "$WSTAMP")" != "$REQS $SDISTS" ]; then
  say "aarch64 wheels and the sources pip compiles on a Pi"
  rm -rf "$WHEELS"
  mkdir -p "$WHEELS"
  # deploy/aarch64/check.sh's download, where there is one: the same files, no second download
  if compgen -G "$CACHE/wheels/*.whl" >/dev/null; then cp "$CACHE"/wheels/*.whl "$WHEELS/"; fi
  # shellcheck disable=SC2086
  "$PY" -m pip download -q --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 \
    --platform manylinux2014_aarch64 -d "$WHEELS" $REQS
  # shellcheck disable=SC2086
  "$PY" -m pip download -q --no-binary=:all: --no-deps -d "$WHEELS" $SDISTS
  echo "$REQS $SDISTS" >"$WSTAMP"
fi

say "the repository's wheel"
DIST=$CACHE/install-dist
rm -rf "$DIST"
"$PY" -m pip wheel -q --no-deps -w "$DIST" "$REPO"
WHEEL=$(basename "$(compgen -G "$DIST/grooverack-*.whl")")

say "a fresh root from $TAR"
rm -rf "$ROOT"
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$TAR"
# the checkout, as cloned on a Pi (install.sh copies it to /opt/grooverack itself)
mkdir -p "$ROOT/root/grooverack"
tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./.cache --exclude=__pycache__ \
  --exclude='*.egg-info' --exclude=.pytest_cache --exclude=.hypothesis --exclude=./runs \
  --exclude=./grooverack-render --exclude=./build --exclude=./dist -cf - . \
  | tar -C "$ROOT/root/grooverack" -xf -
mkdir -p "$ROOT/tmp/wheels" "$ROOT/tmp/dist" "$ROOT/boot/firmware"
cp "$WHEELS"/* "$ROOT/tmp/wheels/"
cp "$DIST/$WHEEL" "$ROOT/tmp/dist/"
# what a Pi 4 has that a bare Debian root has not: its model string, a config.txt, a cpuinfo
# (onnxruntime reads /proc/cpuinfo at import and crashes on an x86 one)
printf '%s\0' "$MODEL" >"$ROOT/tmp/device-model"
printf '# Raspberry Pi OS Bookworm config.txt (stand-in)\n[all]\n' >"$ROOT/boot/firmware/config.txt"

# Run a command in the chroot, in a private mount namespace (nothing leaks out). SYSTEMD_OFFLINE=1:
# systemctl does what it does in a chroot (enable by links, daemon-reload skipped) even where it
# cannot tell it is in one (a sandbox that hides /proc/1/root).
in_root() {
  # shellcheck disable=SC2016  # $0 and $1 belong to the inner shell
  unshare -m --propagation private sh -c '
    r=$0; c=$1; shift
    mount -t proc proc "$r/proc" && mount --bind "$c" "$r/proc/cpuinfo"
    mount --rbind /dev "$r/dev" && mount -t sysfs -o ro sysfs "$r/sys" && mount -t tmpfs tmpfs "$r/run"
    exec chroot "$r" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 GROOVERACK_DEVICE_MODEL=/tmp/device-model SYSTEMD_OFFLINE=1 "$@"' \
    "$ROOT" "$CPUINFO" "$@"
}
in_root_sh() { in_root sh -c "$1"; }

say "aarch64 userland: $(in_root_sh 'uname -m; . /etc/os-release; echo $PRETTY_NAME; python3 --version' | tr '\n' ' ')"

LOG=$CACHE/install-check.log
say "install.sh --no-start in the chroot (log: $LOG)"
start=$SECONDS
INSTALL=(bash /root/grooverack/deploy/install.sh --no-start --wheel "/tmp/dist/$WHEEL" --find-links /tmp/wheels)
if in_root "${INSTALL[@]}" >"$LOG" 2>&1; then
  say "install.sh finished in $((SECONDS - start)) s"
else
  echo "install.sh FAILED in the chroot; its output:"
  cat "$LOG"
  exit 1
fi
sed 's/^/  | /' "$LOG"

say "checks"
V=/opt/grooverack/venv
check "system user grooverack, no login shell" \
  in_root_sh 'id -u grooverack >/dev/null && [ "$(id -u grooverack)" -lt 1000 ] && getent passwd grooverack | grep -q ":/usr/sbin/nologin$"'
check "grooverack in gpio spi i2c audio" \
  in_root_sh 'for g in gpio spi i2c audio; do id -nG grooverack | tr " " "\n" | grep -qx $g || exit 1; done'
check "venv with grooverack from the wheel (site-packages, not the checkout)" \
  in_root_sh "$V/bin/python -c 'import grooverack, sys; sys.exit(\"site-packages\" not in grooverack.__file__)' && $V/bin/pip show -q grooverack >/dev/null && ! $V/bin/pip show grooverack | grep -q '^Editable'"
check "grooverack --version" in_root "$V/bin/grooverack" --version
check "the bus and GPIO packages: spidev, smbus2, gpiod, RPi.GPIO (Pi 4), no rpi-lgpio" \
  in_root_sh "$V/bin/python -c 'import spidev, smbus2, gpiod, importlib.util as u, sys; sys.exit(u.find_spec(\"RPi.GPIO\") is None)' && ! $V/bin/pip show -q rpi-lgpio 2>/dev/null"
check "config /etc/grooverack/grooverack.toml" in_root test -f /etc/grooverack/grooverack.toml
check "data dir /var/lib/grooverack: owner grooverack, mode 750, calibration/ presets/" \
  in_root_sh '[ "$(stat -c %U:%a /var/lib/grooverack)" = grooverack:750 ] && [ -d /var/lib/grooverack/calibration ] && [ -d /var/lib/grooverack/presets ]'
check "SPI, I2C at 400 kHz enabled in /boot/firmware/config.txt, i2c-dev in /etc/modules" \
  in_root_sh 'c=/boot/firmware/config.txt; grep -qx "dtparam=spi=on" $c && grep -qx "dtparam=i2c_arm=on" $c && grep -qx "dtparam=i2c_arm_baudrate=400000" $c && grep -qx i2c-dev /etc/modules'
check "unit /etc/systemd/system/grooverack.service = deploy/grooverack.service" \
  cmp -s "$ROOT/etc/systemd/system/grooverack.service" "$REPO/deploy/grooverack.service"
check "unit enabled (multi-user.target.wants)" \
  in_root_sh 'systemctl is-enabled grooverack.service | grep -qx enabled'
verify=$(in_root systemd-analyze verify --man=no /etc/systemd/system/grooverack.service 2>&1) && vrc=0 || vrc=$?
check "systemd-analyze verify (arm64 systemd $(in_root_sh 'systemctl --version | head -1 | cut -d" " -f2')) clean${verify:+: $verify}" \
  test "$vrc" -eq 0 -a -z "$verify"
check "grooverack doctor --board sim as the service user (the model loads)" \
  in_root_sh "cd /var/lib/grooverack && runuser -u grooverack -- $V/bin/grooverack doctor --board sim --config /etc/grooverack/grooverack.toml >/tmp/doctor-sim.txt 2>&1"
check "grooverack sim --bars 2 as the service user" \
  in_root_sh "cd /tmp && runuser -u grooverack -- $V/bin/grooverack sim --seed 0 --bars 2 -q --out /tmp/render && [ -s /tmp/render/outputs.csv ]"
unit_before=$(stat -c %Y "$ROOT/etc/systemd/system/grooverack.service")
again=$(in_root "${INSTALL[@]}" 2>&1) && arc=0 || arc=$?
check "second install.sh run: exit 0, user kept, no config.dist, config.txt and the unit untouched" \
  sh -c '[ "$1" -eq 0 ] && printf "%s" "$2" | grep -q "user grooverack exists" && [ ! -e "$3/etc/grooverack/grooverack.toml.dist" ] && [ "$(stat -c %Y "$3/etc/systemd/system/grooverack.service")" = "$4" ] && [ "$(grep -c dtparam= "$3/boot/firmware/config.txt")" = 3 ] && ! printf "%s" "$2" | grep -q "reboot once"' \
  _ "$arc" "$again" "$ROOT" "$unit_before"
[ "$fail" -eq 0 ] || printf '%s\n' "$again" | sed 's/^/  | /'

say "grooverack doctor on the configured board (reference), in the chroot: what needs a Pi"
in_root_sh "cd /var/lib/grooverack && runuser -u grooverack -- $V/bin/grooverack doctor --config /etc/grooverack/grooverack.toml 2>&1" \
  | sed 's/^/  | /' || true

if [ "$fail" -eq 0 ]; then
  echo "install check: passed"
  rm -rf "$ROOT"
else
  echo "install check: FAILED (the root is kept in $ROOT)"
fi
exit "$fail"
