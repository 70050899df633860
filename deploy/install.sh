#!/usr/bin/env bash
# Install grooverack as a service on Raspberry Pi OS Bookworm (Pi 3, 4, 5, Zero 2 W).
#
#   sudo deploy/install.sh                 install or update (idempotent: run it again any time)
#   sudo deploy/install.sh --uninstall     remove the service, program and venv; keep config + data
#   sudo deploy/install.sh --uninstall --purge   also remove config, data and the service user
#   deploy/install.sh --dry-run            print what would be done, change nothing
#   sudo deploy/install.sh --wheel FILE.whl --find-links DIR   a built wheel, offline from DIR
#
# Layout: program + venv in /opt/grooverack, config in /etc/grooverack/grooverack.toml, state,
# presets and calibration in /var/lib/grooverack (the writable partition on a read-only root; see
# deploy/README.md). SPI and I2C are enabled; the service user joins gpio, spi, i2c and audio.
set -euo pipefail

PREFIX=/opt/grooverack
CONF_DIR=/etc/grooverack
DATA_DIR=/var/lib/grooverack
SERVICE_USER=grooverack
UNIT=/etc/systemd/system/grooverack.service
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

ACTION=install
PURGE=0
DRY_RUN=0
START=1
REBOOT_NEEDED=0
WHEEL=""
FIND_LINKS=""

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  echo "options: --uninstall [--purge] | --dry-run | --no-start | --prefix DIR | --data-dir DIR | --user NAME"
  echo "         --wheel FILE (install this grooverack wheel, not the checkout editable)"
  echo "         --find-links DIR (pip takes every package from DIR, no index: an offline install)"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --uninstall) ACTION=uninstall ;;
    --purge) PURGE=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --no-start) START=0 ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift ;;
    --data-dir) DATA_DIR="${2:?--data-dir needs a directory}"; shift ;;
    --user) SERVICE_USER="${2:?--user needs a name}"; shift ;;
    --wheel) WHEEL="${2:?--wheel needs a .whl file}"; shift ;;
    --find-links) FIND_LINKS="${2:?--find-links needs a directory}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

say() { printf '==> %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

# Run a command, or print it under --dry-run.
run() {
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '+ %s\n' "$*"
  else
    "$@"
  fi
}

# pip of the service's venv; with --find-links every package comes from that folder (no index).
venv_pip() {
  local verb="$1" index=()
  shift
  if [ -n "$FIND_LINKS" ] && [ "$verb" = install ]; then
    index=(--no-index --find-links "$FIND_LINKS")
  fi
  run "$PREFIX/venv/bin/pip" "$verb" -q "${index[@]}" "$@"
}

# Write stdin to a file only when the content differs (idempotent, no needless restarts).
put_file() {
  local dest="$1" mode="$2" tmp
  tmp="$(mktemp)"
  cat >"$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
    return 1
  fi
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '+ write %s\n' "$dest"
    rm -f "$tmp"
  else
    install -D -m "$mode" "$tmp" "$dest"
    rm -f "$tmp"
  fi
  return 0
}

# The board's model string; GROOVERACK_DEVICE_MODEL names another file (tests, chroot installs).
pi_model() {
  local file="${GROOVERACK_DEVICE_MODEL:-/proc/device-tree/model}"
  if [ -r "$file" ]; then
    tr -d '\0' <"$file"
  else
    echo "unknown"
  fi
}

boot_config() {
  if [ -f /boot/firmware/config.txt ]; then
    echo /boot/firmware/config.txt  # Bookworm
  elif [ -f /boot/config.txt ]; then
    echo /boot/config.txt           # Bullseye and older
  fi
}

check_platform() {
  if [ "$(id -u)" -ne 0 ] && [ "$DRY_RUN" -eq 0 ]; then
    die "run as root (sudo $0)"
  fi
  local codename=""
  if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  fi
  if [ "$codename" != "bookworm" ]; then
    warn "made for Raspberry Pi OS Bookworm, this is '${codename:-unknown}': continuing"
  fi
  [ -f "$SRC/pyproject.toml" ] || die "$SRC does not look like the grooverack source (no pyproject.toml)"
  if [ -n "$WHEEL" ]; then
    case "$WHEEL" in *.whl) ;; *) die "--wheel $WHEEL: not a .whl file" ;; esac
    [ -f "$WHEEL" ] || die "--wheel $WHEEL: no such file"
    WHEEL="$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")"
  fi
  if [ -n "$FIND_LINKS" ]; then
    [ -d "$FIND_LINKS" ] || die "--find-links $FIND_LINKS: no such directory"
    FIND_LINKS="$(cd "$FIND_LINKS" && pwd)"
  fi
  local arch
  arch="$(uname -m)"
  case "$arch" in
    armv6l|armv7l)
      # onnxruntime publishes no 32-bit ARM wheels; every supported Pi runs the 64-bit OS
      die "this is a 32-bit OS ($arch): install the 64-bit Raspberry Pi OS (Bookworm, arm64) - the Pi 3, 4, 5 and Zero 2 W all run it" ;;
  esac
}

# RPi.GPIO cannot find the Pi 5's GPIO (RP1): there the rpi-lgpio package provides the same module.
gpio_package() {
  case "$1" in
    *"Raspberry Pi 5"*|*"Compute Module 5"*) echo "rpi-lgpio" ;;
    *"Raspberry Pi"*) echo "RPi.GPIO" ;;
    *) echo "" ;;
  esac
}

install_apt() {
  # build-essential: spidev and RPi.GPIO are built from source by pip
  local pkgs=(python3 python3-venv python3-dev python3-pip build-essential rsync i2c-tools)
  case "$(pi_model)" in
    *"Raspberry Pi 5"*|*"Compute Module 5"*) pkgs+=(liblgpio-dev swig) ;;
  esac
  local missing=()
  local p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "apt packages: ${missing[*]}"
    run apt-get update -qq
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    say "apt packages present"
  fi
}

enable_bus() {  # $1 = spi | i2c
  local bus="$1" cfg line
  if command -v raspi-config >/dev/null 2>&1; then
    # raspi-config nonint get_spi/get_i2c prints 0 when enabled
    if [ "$(raspi-config nonint "get_$bus" 2>/dev/null || echo 1)" = "0" ]; then
      say "$bus already enabled"
      return
    fi
    say "enabling $bus (raspi-config)"
    run raspi-config nonint "do_$bus" 0
    REBOOT_NEEDED=1
    return
  fi
  cfg="$(boot_config)"
  if [ -z "$cfg" ]; then
    warn "no raspi-config and no config.txt: enable $bus by hand"
    return
  fi
  if [ "$bus" = spi ]; then line="dtparam=spi=on"; else line="dtparam=i2c_arm=on"; fi
  if grep -qE "^[[:space:]]*${line}[[:space:]]*$" "$cfg"; then
    say "$bus already enabled in $cfg"
  else
    say "enabling $bus in $cfg"
    append_boot_line "$cfg" "$line"
  fi
  if [ "$bus" = i2c ] && ! grep -qx "i2c-dev" /etc/modules 2>/dev/null; then
    if [ "$DRY_RUN" -eq 1 ]; then
      printf '+ append i2c-dev to /etc/modules\n'
    else
      echo "i2c-dev" >>/etc/modules
    fi
  fi
}

# Append a line to config.txt (printed only with --dry-run); it takes effect at the next boot.
append_boot_line() {  # $1 = config.txt, $2 = the line
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '+ append %s to %s\n' "$2" "$1"
  else
    printf '%s\n' "$2" >>"$1"
  fi
  REBOOT_NEEDED=1
}

# The MCP4728 DACs need the 400 kHz I2C clock (the Pi's default is 100 kHz; `grooverack doctor`
# checks it). A clock someone set is left alone.
i2c_clock() {
  local cfg line=dtparam=i2c_arm_baudrate=400000
  cfg="$(boot_config)"
  if [ -z "$cfg" ]; then
    warn "no config.txt: set $line by hand"
  elif grep -qE "^[[:space:]]*dtparam=.*i2c_arm_baudrate=" "$cfg"; then
    grep -qE "^[[:space:]]*${line}[[:space:]]*$" "$cfg" \
      || warn "$cfg sets another I2C clock: kept (the MCP4728 DACs need 400000)"
  else
    say "I2C clock 400 kHz in $cfg"
    append_boot_line "$cfg" "$line"
  fi
}

ensure_user() {
  if id "$SERVICE_USER" >/dev/null 2>&1; then
    say "user $SERVICE_USER exists"
  else
    say "creating system user $SERVICE_USER"
    run useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
      --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
  local g
  for g in gpio spi i2c audio; do
    if ! getent group "$g" >/dev/null; then
      # Raspberry Pi OS has all four, with udev rules giving them /dev/gpiochip*, /dev/spidev*,
      # /dev/i2c-*; the unit's SupplementaryGroups= fails the start when one is missing
      warn "group $g does not exist (not Raspberry Pi OS?): creating it; without Raspberry Pi OS's udev rules its devices are not given to it"
      run groupadd --system "$g"
    fi
    if id -nG "$SERVICE_USER" 2>/dev/null | tr ' ' '\n' | grep -qx "$g"; then
      continue
    fi
    run usermod -a -G "$g" "$SERVICE_USER"
  done
}

install_program() {
  say "program in $PREFIX"
  run mkdir -p "$PREFIX"
  if [ "$SRC" != "$PREFIX" ]; then
    run rsync -a --delete \
      --exclude .git/ --exclude .venv/ --exclude venv/ --exclude .cache/ --exclude __pycache__/ \
      --exclude '*.egg-info/' --exclude .pytest_cache/ --exclude .hypothesis/ --exclude runs/ \
      --exclude grooverack-render/ \
      "$SRC/" "$PREFIX/"
  fi
  if [ ! -x "$PREFIX/venv/bin/python" ]; then
    run python3 -m venv "$PREFIX/venv"
  fi
  venv_pip install --upgrade pip
  # editable from the copied checkout, or --wheel (it carries the same files: grooverack.resources).
  # The buses' packages are named here rather than through the [pi] extra: the GPIO library is
  # chosen per Pi model below (RPi.GPIO and rpi-lgpio must not be installed together). gpiod
  # (libgpiod v2, kernel-stamped edges, every Pi) is the one the firmware uses; the RPi.GPIO API
  # is its fallback.
  local program=(-e "$PREFIX")
  if [ -n "$WHEEL" ]; then
    # a rebuilt wheel keeps its version number: replace the package every time
    venv_pip install --force-reinstall --no-deps "$WHEEL"
    program=("$WHEEL")
  fi
  venv_pip install "${program[@]}" spidev smbus2 "gpiod>=2.1"
  local model gpio
  model="$(pi_model)"
  gpio="$(gpio_package "$model")"
  if [ -n "$gpio" ]; then
    say "GPIO library for '$model': $gpio"
    if [ "$gpio" = "rpi-lgpio" ]; then
      # rpi-lgpio provides the RPi.GPIO module; the two must not be installed together
      venv_pip uninstall -y RPi.GPIO || true
    fi
    venv_pip install "$gpio"
  else
    warn "not a Raspberry Pi ('$model'): no GPIO library installed"
  fi
}

install_config() {
  run mkdir -p "$CONF_DIR"
  local conf="$CONF_DIR/grooverack.toml"
  local example
  example="$(sed "s#/var/lib/grooverack#$DATA_DIR#g" "$SRC/deploy/grooverack.toml")"
  if [ -f "$conf" ]; then
    # never overwrite a person's configuration: a different example goes next to it
    if printf '%s\n' "$example" | cmp -s - "$conf"; then
      say "config $conf (as shipped)"
    elif printf '%s\n' "$example" | put_file "$conf.dist" 0644; then
      say "kept $conf; the new example is $conf.dist"
    fi
  else
    printf '%s\n' "$example" | put_file "$conf" 0644 || true
    say "config $conf"
  fi
  run mkdir -p "$DATA_DIR/calibration" "$DATA_DIR/presets"
  run chown -R "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR"
  run chmod 0750 "$DATA_DIR"
  say "state, presets and calibration in $DATA_DIR"
}

install_unit() {
  local changed=0
  if sed -e "s#/opt/grooverack#$PREFIX#g" -e "s#/var/lib/grooverack#$DATA_DIR#g" \
      -e "s#^User=grooverack#User=$SERVICE_USER#" -e "s#^Group=grooverack#Group=$SERVICE_USER#" \
      "$SRC/deploy/grooverack.service" | put_file "$UNIT" 0644; then
    changed=1
  fi
  if [ "$DATA_DIR" != /var/lib/grooverack ]; then
    # StateDirectory= only manages /var/lib/NAME; a custom data dir is prepared above instead
    if [ "$DRY_RUN" -eq 0 ]; then
      sed -i -e '/^StateDirectory/d' "$UNIT"
    fi
  fi
  run systemctl daemon-reload
  run systemctl enable grooverack.service
  if [ "$START" -eq 1 ]; then
    if [ "$changed" -eq 1 ] || ! systemctl is-active --quiet grooverack.service; then
      run systemctl restart grooverack.service
    fi
  fi
}

do_install() {
  check_platform
  say "installing grooverack from $SRC on '$(pi_model)'"
  install_apt
  enable_bus spi
  enable_bus i2c
  i2c_clock
  ensure_user
  install_program
  install_config
  install_unit
  say "done: systemctl status grooverack; journalctl -u grooverack -f"
  say "calibrate: sudo -u $SERVICE_USER $PREFIX/venv/bin/grooverack calibrate --config $CONF_DIR/grooverack.toml"
  if [ "$REBOOT_NEEDED" -eq 1 ]; then
    say "SPI/I2C were enabled or the I2C clock set: reboot once (sudo reboot)"
  fi
}

do_uninstall() {
  check_platform
  if [ -f "$UNIT" ]; then
    run systemctl disable --now grooverack.service || true
    run rm -f "$UNIT"
    run systemctl daemon-reload
  fi
  if [ -d "$PREFIX" ] && [ "$PREFIX" != "$SRC" ]; then
    run rm -rf "$PREFIX"
  fi
  if [ "$PURGE" -eq 1 ]; then
    run rm -rf "$CONF_DIR" "$DATA_DIR"
    if id "$SERVICE_USER" >/dev/null 2>&1; then
      run userdel "$SERVICE_USER"
    fi
    say "removed program, config, data and user $SERVICE_USER"
  else
    say "removed the service and $PREFIX; kept $CONF_DIR and $DATA_DIR (--purge removes them)"
  fi
}

case "$ACTION" in
  install) do_install ;;
  uninstall) do_uninstall ;;
esac
