"""`grooverack doctor`: is this board ready to play? Device nodes, permissions and groups, the
Python bus modules, then a probe of every chip of the board (I2C addresses answer, ADC channels
read sane values, DAC registers read back), the GPIO inputs at rest, and a short scan burst
through the panel's fault guard. One verdict per part; exit status 1 when a part fails.

`--board sim` probes the emulated chips of the sim board (no device nodes to check). An ES-9
board: a JACK server at the board's rate, the audio device and its channels; a MIDI board: the
MIDI system (and JACK for midi.api = "jack") and the input and output ports.
"""

from __future__ import annotations

import argparse
import grp
import importlib
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grooverack.backends.panel.hardware import faults_path, gpio_choice, open_hardware
from grooverack.backends.panel.scanner import ControlScanner
from grooverack.boards.board import load_board
from grooverack.calibration import Calibration
from grooverack.commands.backends import backend_for
from grooverack.commands.common import add_common
from grooverack.config import Settings, load_settings
from grooverack.drivers.ads1115 import ADS1115
from grooverack.drivers.gpiod_pins import chip_paths, header_chip, open_gpiod
from grooverack.drivers.mcp3208 import MCP3208
from grooverack.drivers.mcp4728 import MCP4728
from grooverack.errors import BusDown
from grooverack.model.watch import ModelWatch

OK, WARN, FAIL = "ok", "warn", "FAIL"
DESKTOP_HINT = ("install the desktop extra: pip install 'grooverack[desktop]' (in a checkout: "
                "pip install -e '.[desktop]')")
ENABLE = {
    "spi": "enable SPI: `sudo raspi-config nonint do_spi 0` (or dtparam=spi=on in "
           "/boot/firmware/config.txt) and reboot",
    "i2c": "enable I2C: `sudo raspi-config nonint do_i2c 0` (or dtparam=i2c_arm=on) and reboot",
}


@dataclass
class Check:
    part: str
    status: str
    detail: str

    def line(self) -> str:
        return f"  {self.status:<4}  {self.part}: {self.detail}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--board", help="board name in hw/boards/ or a TOML path "
                        "(default: the config's `board`)")
    parser.add_argument("--scans", type=int, default=25,
                        help="ADC scans run through the fault guard to measure bus health")
    parser.add_argument("--dev", default="/dev", help=argparse.SUPPRESS)  # tests: a fake /dev


# --------------------------------------------------------------------------------------------
# device nodes, permissions, groups, modules


def _groups_of_user() -> set[int]:
    return set(os.getgroups()) | {os.getegid()}


def check_node(path: Path, part: str, kind: str) -> Check:
    if not path.exists():
        return Check(part, FAIL, f"{path} is missing: {ENABLE.get(kind, 'is the driver loaded?')}")
    st = path.stat()
    if not stat.S_ISCHR(st.st_mode):
        return Check(part, FAIL, f"{path} exists but is not a character device")
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    if not os.access(path, os.R_OK | os.W_OK):
        member = st.st_gid in _groups_of_user()
        hint = (f"you are in group {group!r} but it has no rw access: check the udev rules"
                if member else f"add yourself to group {group!r}: `sudo usermod -aG {group} "
                f"$USER`, then log in again")
        return Check(part, FAIL, f"{path}: permission denied (mode {stat.filemode(st.st_mode)}, "
                     f"group {group}); {hint}")
    return Check(part, OK, f"{path} present, read/write as {os.environ.get('USER', 'this user')} "
                 f"(group {group})")


def check_module(name: str, part: str, hint: str) -> Check:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        return Check(part, FAIL, f"Python module {name} not importable ({exc}): {hint}")
    except RuntimeError as exc:  # RPi.GPIO on a Pi 5: "Cannot determine SOC peripheral base"
        return Check(part, FAIL, f"Python module {name} fails to load ({exc}): {hint}")
    return Check(part, OK, f"Python module {name} importable")


def node_checks(board: Any, dev: Path) -> list[Check]:
    checks = []
    for chip in board.chips.values():
        label = f"{chip.name} ({chip.part.upper()}) node"
        if chip.bus == "spi":
            checks.append(check_node(dev / f"spidev{chip.bus_number}.{chip.device}", label, "spi"))
        else:
            checks.append(check_node(dev / f"i2c-{chip.bus_number}", label, "i2c"))
    chips = sorted(dev.glob("gpiochip*"))
    gpiomem = dev / "gpiomem"
    if gpiomem.exists():
        checks.append(check_node(gpiomem, "GPIO node", "gpio"))
    elif chips:
        checks.append(check_node(chips[0], "GPIO node", "gpio"))
    else:
        checks.append(Check("GPIO node", FAIL, f"neither {gpiomem} nor {dev}/gpiochip* exists: "
                            "not a Raspberry Pi, or the GPIO driver is not loaded"))
    if any(c.bus == "spi" for c in board.chips.values()):
        checks.append(check_module("spidev", "spidev", "`pip install spidev` (or apt install "
                                   "python3-spidev)"))
    if any(c.bus == "i2c" for c in board.chips.values()):
        checks.append(check_module("smbus2", "smbus2", "`pip install smbus2`"))
    if gpiod_header(dev)[0] is None:  # libgpiod not usable here: the RPi.GPIO fallback must be
        checks.append(check_module("RPi.GPIO", "RPi.GPIO", "`pip install 'gpiod>=2.1'` (every "
                                   "Pi), or apt install python3-rpi.gpio (Pi <= 4) or "
                                   "`pip install rpi-lgpio` (Pi 5)"))
    return checks


# --------------------------------------------------------------------------------------------
# chip probes


def _probe(part: str, fn: Callable[[], str]) -> Check:

    try:
        detail = fn()
    except BusDown:
        return Check(part, FAIL, "no answer after retries (see the fault line below)")
    except OSError as exc:
        return Check(part, FAIL, f"bus error: {exc}")
    if detail.startswith("!"):
        return Check(part, WARN, detail[1:])
    return Check(part, OK, detail)


def chip_checks(board: Any, hw: Any, cal: Any, scans: int) -> list[Check]:

    checks = []
    for chip in board.chips.values():
        part = f"{chip.name} ({chip.part.upper()} at {chip.where})"
        guard = hw.guards[chip.name]
        driver = hw.adcs.get(chip.name) or hw.dacs.get(chip.name)

        if isinstance(driver, MCP3208):
            def mcp3208(driver: Any = driver, guard: Any = guard, chip: Any = chip) -> str:
                codes = [guard.call(driver.read_many, range(8)) for _ in range(4)]
                flat = [c for row in codes for c in row]
                if len(set(flat)) == 1 and flat[0] in (0, 4095):
                    raise OSError(f"every channel reads {flat[0]} four times: MISO stuck "
                                  f"{'low' if flat[0] == 0 else 'high'}, chip missing or CS "
                                  f"wrong (spi_device {chip.device})")
                return _adc_summary(board, cal, chip.name, codes[-1])
            checks.append(_probe(part, mcp3208))
        elif isinstance(driver, ADS1115):
            def ads1115(driver: Any = driver, guard: Any = guard, chip: Any = chip) -> str:
                config = guard.call(driver.read_register, 1)
                if config & 0x0003 != 0x0003 and config != 0:
                    note = f"; comparator enabled (config 0x{config:04x})"
                else:
                    note = ""
                codes = [guard.call(driver.read_single, ch) for ch in range(4)]
                return _adc_summary(board, cal, chip.name, codes) + note
            checks.append(_probe(part, ads1115))
        elif isinstance(driver, MCP4728):
            def mcp4728(driver: Any = driver, guard: Any = guard) -> str:
                guard.call(driver.configure)
                states = guard.call(driver.read_back)
                if not all(s.por for s in states):
                    return "!answers, but POR is clear: supply below the power-on threshold?"
                if not all(s.vref_internal and s.gain2 for s in states):
                    return "!answers, but VREF/gain did not stick (internal 2.048 V x2 expected)"
                return ("answers; internal 2.048 V reference x2 on all four channels, codes "
                        + ", ".join(str(s.code) for s in states))
            checks.append(_probe(part, mcp4728))
        else:
            checks.append(Check(part, WARN, "write-only part (no SDO): cannot be probed; check "
                                "its outputs with `grooverack calibrate --only outputs`"))

    for item in board.gpio_inputs.values():
        hw.gpio.add_input(item.pin, pull=item.pull)
        level = hw.gpio.read(item.pin)
        active = bool(level) ^ item.active_low
        part = f"{item.name} (GPIO {item.pin}, {item.role})"
        if active:
            what = "pressed" if item.role == "button" else "high with nothing expected"
            checks.append(Check(part, WARN, f"reads active ({what}) at rest: a patched cable, "
                                "a stuck button, or the pull/inversion in the board file"))
        else:
            checks.append(Check(part, OK, "idle"))

    if scans > 0:

        scanner = ControlScanner(board, hw, cal, Settings())
        for _ in range(scans):
            scanner.scan()
        for name, guard in hw.guards.items():
            c = guard.counter
            if c.faults or c.skipped:
                checks.append(Check(f"{name} bus health", FAIL if c.ok == 0 else WARN,
                                    f"{c.faults} failed attempts, {c.failed} operations given up, "
                                    f"{c.skipped} skipped while backing off, {c.ok} good; last "
                                    f"error: {c.last_error}"))
        good = [n for n, g in hw.guards.items() if not g.counter.faults]
        if good:
            checks.append(Check("bus health", OK, f"{scans} scans without a fault on "
                                f"{', '.join(good)}"))
    return checks


def _adc_summary(board: Any, cal: Any, chip: str, codes: list[int]) -> str:
    parts, warn = [], []
    for item in board.inputs.values():
        if item.chip == chip:
            volts = cal.to_volts(item.name, codes[item.channel])
            parts.append(f"{item.name} {volts:+.3f} V")
            if abs(volts) > 0.5:
                warn.append(item.name)
    for pot in board.pots.values():
        if pot.chip == chip:
            parts.append(f"{pot.name} pot {codes[pot.channel] / pot.code_max:.2f}")
    text = "channels answer: " + ", ".join(parts)
    if warn:
        return ("!" + text + f"; {', '.join(warn)} far from 0 V: patched, or an offset "
                "(run `grooverack calibrate`)")
    return text


# --------------------------------------------------------------------------------------------


I2C_FAST_HZ = 400_000  # the MCP4728 wants fast mode: a 4-channel fast write ~0.21 ms (0.83 at 100 kHz)


def gpio_library() -> str:
    """Which distribution provides the `RPi.GPIO` module here (rpi-lgpio on a Pi 5)."""
    from importlib import metadata

    for dist in ("rpi-lgpio", "RPi.GPIO"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return "none installed"


def gpiod_header(dev: Path = Path("/dev")) -> tuple[str | None, str]:
    """(header chip, detail) when libgpiod v2 would drive the pins here, else (None, why not)."""
    if gpio_choice() == "rpigpio":
        return None, "GROOVERACK_GPIO=rpigpio"
    try:
        gpiod = open_gpiod()
        chip = header_chip(gpiod, chip_paths(str(dev)))
        with gpiod.Chip(chip) as c:
            label = c.get_info().label
    except OSError as exc:
        return None, str(exc)
    return chip, f"libgpiod v2 (gpiod {getattr(gpiod, '__version__', '?')}) on {chip} ({label})"


def gpio_check(dev: Path = Path("/dev")) -> Check:
    """The "GPIO library" line: the one `open_hardware` picks here (libgpiod v2, else RPi.GPIO)."""
    chip, detail = gpiod_header(dev)
    if chip is not None:
        return Check("GPIO library", OK, detail + ": edges carry the kernel's timestamps")
    if gpio_choice() == "gpiod":
        return Check("GPIO library", FAIL, f"GROOVERACK_GPIO=gpiod but libgpiod is not usable: "
                     f"{detail}")
    library = gpio_library()
    missing = library == "none installed"
    return Check("GPIO library", WARN if missing else OK,
                 f"RPi.GPIO API from {library} (libgpiod not used: {detail})" + (
                     "; on a Pi: pip install 'gpiod>=2.1' (every Pi), or rpi-lgpio / RPi.GPIO"
                     if missing else ""))


def platform_checks(board: Any, root: Path = Path("/")) -> list[Check]:
    """What the module runs on: the Pi model, the kernel (PREEMPT_RT or not), the I²C clock the
    firmware config sets, the GPIO library in use."""
    checks: list[Check] = []
    model_file = root / "proc" / "device-tree" / "model"
    try:
        model = model_file.read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip()
        checks.append(Check("Pi model", OK, model))
    except OSError:
        checks.append(Check("Pi model", WARN, f"{model_file} not readable: not a Raspberry Pi?"))
    uname = os.uname()
    realtime = (root / "sys" / "kernel" / "realtime").is_file() and \
        (root / "sys" / "kernel" / "realtime").read_text().strip() == "1"
    realtime = realtime or "PREEMPT_RT" in uname.version
    checks.append(Check("kernel", OK if realtime else WARN,
                        f"{uname.release} {uname.machine}; "
                        + ("PREEMPT_RT" if realtime else "not PREEMPT_RT (triggers can be late "
                                                         "by the kernel's latency under load)")))
    if any(chip.bus == "i2c" for chip in board.chips.values()):
        baud, where = 100_000, "default"
        for config in (root / "boot" / "firmware" / "config.txt", root / "boot" / "config.txt"):
            try:
                lines = config.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                text = line.split("#", 1)[0].strip().replace(" ", "")
                if text.startswith("dtparam=") and "i2c_arm_baudrate=" in text:
                    value = text.split("i2c_arm_baudrate=", 1)[1].split(",", 1)[0]
                    if value.isdigit():
                        baud, where = int(value), str(config)
            break
        fast = baud >= I2C_FAST_HZ
        checks.append(Check("I2C clock", OK if fast else WARN,
                            f"{baud // 1000} kHz ({where})" + ("" if fast else
                            f"; the MCP4728 needs {I2C_FAST_HZ // 1000} kHz: add "
                            f"dtparam=i2c_arm_baudrate={I2C_FAST_HZ} to config.txt")))
    checks.append(gpio_check(root / "dev"))
    return checks


def diagnose(board: Any, *, dev: Path = Path("/dev"), scans: int = 25,
             hardware: Any = None) -> list[Check]:
    """Every check of `board`; `hardware` (tests) replaces opening the real buses."""

    if not board.is_panel:
        return [Check(board.name, FAIL, f"kind {board.kind!r}: no checks for this kind")]
    checks: list[Check] = []
    if hardware is None and board.kind == "sim":
        hardware = open_hardware(board)  # over the board's emulated chips
        checks.append(Check("device nodes", OK, f"board {board.name!r} runs on emulated chips "
                            f"(base {board.base!r}): no device nodes needed"))
        checks.append(Check("GPIO library", OK, f"{hardware.gpio.library} API on the emulated "
                            "header (GROOVERACK_GPIO=gpiod|rpigpio picks)"))
    elif hardware is None:
        checks += platform_checks(board)
        checks += node_checks(board, dev)
        if any(c.status == FAIL for c in checks):
            checks.append(Check("chip probes", FAIL, "skipped: fix the lines above first"))
            return checks
        try:
            hardware = open_hardware(board)
        except (OSError, RuntimeError) as exc:
            checks.append(Check("open buses", FAIL, str(exc)))
            return checks
    try:
        cal = Calibration.nominal(board)
        checks += chip_checks(board, hardware, cal, scans)
    finally:
        try:
            hardware.gpio.close()
        finally:
            hardware.close()
    return checks


# --------------------------------------------------------------------------------------------
# ES-9 and MIDI boards: what each needs (a JACK server, the ES-9's audio device, MIDI ports)
# and whether it is there


def jack_check(need: str, rate: int | None = None, block: int | None = None) -> Check:
    """A JACK server this process can reach (`$JACK_DEFAULT_SERVER` or the default one), at the
    rate the board runs at; a period longer than the board's block is a warning."""
    try:
        import jack
    except (ImportError, OSError) as exc:
        return Check("JACK server", FAIL, f"{need}; the JACK-Client module is missing ({exc}): "
                     f"{DESKTOP_HINT}")
    jack.set_error_function(lambda _msg: None)  # "cannot connect" is the answer, not noise
    try:
        client = jack.Client("grooverack-doctor", no_start_server=True)
    except jack.JackError:
        server = os.environ.get("JACK_DEFAULT_SERVER", "default")
        return Check("JACK server", FAIL, f"{need}; no JACK server {server!r} running: start "
                     "one (qjackctl, or `jackd -d alsa -d hw:ES9 -r 48000 -p 64` for an ES-9)")
    finally:
        jack.set_error_function()
    try:
        sr, period = int(client.samplerate), int(client.blocksize)
    finally:
        client.close()
    detail = f"running at {sr} Hz, {period}-frame periods ({1000 * period / sr:.1f} ms)"
    if rate is not None and sr != rate:
        return Check("JACK server", FAIL, f"{detail}; the board runs at {rate} Hz: restart the "
                     f"server at -r {rate} (or set the board's es9.samplerate)")
    if block is not None and period > block:
        return Check("JACK server", WARN, f"{detail}; longer than the board's {block}-frame "
                     f"block: outputs change only once per period (start it with -p {block})")
    return Check("JACK server", OK, detail)


def midi_port_checks(options: Any, need_input: bool = True) -> list[Check]:
    """python-rtmidi, its MIDI system, and the configured input and output ports."""
    try:
        from grooverack.backends.midi import api_id, find_port, load_rtmidi

        rtmidi = load_rtmidi()
    except ImportError as exc:
        return [Check("MIDI", FAIL, f"python-rtmidi is missing ({exc}): {DESKTOP_HINT}")]
    checks = []
    if options.api == "jack":
        checks.append(jack_check("midi.api = \"jack\" needs a JACK server"))
        if checks[-1].status == FAIL:
            return checks
    try:
        midi_in = rtmidi.MidiIn(api_id(options.api), name="grooverack doctor")
        midi_out = rtmidi.MidiOut(api_id(options.api), name="grooverack doctor")
    except Exception as exc:  # the MIDI system is not there (no ALSA sequencer, no server)
        hint = ("; with a JACK server running, midi.api = \"jack\" needs no ALSA sequencer"
                if options.api != "jack" else "")
        return [*checks, Check("MIDI", FAIL, f"midi.api = {options.api!r} does not open: {exc} "
                               f"(ALSA: is /dev/snd/seq there? `sudo modprobe snd-seq`){hint}")]
    try:
        ins, outs = midi_in.get_ports(), midi_out.get_ports()
    finally:
        midi_in.delete()
        midi_out.delete()
    for kind, wanted, names, key, virtual in (
            ("input", options.input_port, ins, "midi.input_port", "grooverack in"),
            ("output", options.output_port, outs, "midi.output_port", "grooverack out")):
        if kind == "input" and not need_input:
            continue
        part = f"MIDI {kind}"
        if not wanted:
            checks.append(Check(part, OK, f"no {key} set: a virtual port {virtual!r} is made "
                                f"({options.api}); connect your device or DAW to it"))
        elif find_port(names, wanted) is None:
            checks.append(Check(part, FAIL, f"{key} = {wanted!r} matches none of the "
                                f"{options.api} ports: {', '.join(names) or 'none'}"))
        else:
            checks.append(Check(part, OK, f"{key} = {wanted!r}: "
                                f"{names[find_port(names, wanted) or 0]!r}"))
    return checks


def es9_checks(board: Any, settings: Settings) -> list[Check]:
    """An ES-9 board: the [es9] table, PortAudio, a JACK server at the board's rate, the audio
    device with the channels the board uses (and the MIDI mirror's output port)."""
    from grooverack.boards.es9 import parse_board

    try:
        es9 = parse_board(board, settings)
    except Exception as exc:  # ConfigError names the file and key
        return [Check("board", FAIL, str(exc))]
    checks = [Check("board", OK, f"[es9] table: {es9.samplerate} Hz, {es9.blocksize}-frame "
                    f"blocks, {es9.input_channels} inputs / {es9.output_channels} outputs used")]
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        return [*checks, Check("PortAudio", FAIL, f"sounddevice/PortAudio missing ({exc}): "
                               f"{DESKTOP_HINT}")]
    checks.append(jack_check("the ES-9 plays through a JACK server", es9.samplerate,
                             es9.blocksize))
    if checks[-1].status == FAIL:
        return checks
    from grooverack.backends.es9 import refresh_devices

    refresh_devices()  # PortAudio reads the JACK clients that exist now
    devices = sd.query_devices()
    for kind, name, used in (("input", es9.input_device, es9.input_channels),
                             ("output", es9.output_device, es9.output_channels)):
        match = [d for d in devices if name.lower() in d["name"].lower()
                 and d[f"max_{kind}_channels"] > 0]
        part = f"audio {kind}"
        if not match:
            names = ", ".join(repr(d["name"]) for d in devices) or "none"
            checks.append(Check(part, FAIL, f"no device matching {name!r} with {kind}s (is the "
                                "ES-9 plugged in and the JACK server running on it? es9.device "
                                f"picks another); devices: {names}"))
        elif match[0][f"max_{kind}_channels"] < used:
            checks.append(Check(part, FAIL, f"{match[0]['name']!r} has "
                                f"{match[0][f'max_{kind}_channels']} {kind} channels; the "
                                f"board uses channel {used}"))
        else:
            checks.append(Check(part, OK, f"{match[0]['name']!r}: "
                                f"{match[0][f'max_{kind}_channels']} {kind} channels, the board "
                                f"uses up to {used}"))
    if es9.midi is not None:
        from grooverack.boards.midi import midi_options

        checks += midi_port_checks(midi_options(settings, board), need_input=False)
    return checks


def midi_checks(board: Any, settings: Settings) -> list[Check]:
    from grooverack.boards.midi import midi_options

    try:
        options = midi_options(settings, board)
    except Exception as exc:  # ConfigError names the file and key
        return [Check("board", FAIL, str(exc))]
    return [Check("board", OK, f"[midi] profile {options.profile!r}, midi.api = "
                  f"{options.api!r}, clock.source = {settings['clock.source']!r}"),
            *midi_port_checks(options)]


def model_check(settings: Settings) -> Check:
    """What will play: the model (it opens: every file present, hashes and metadata right), or
    rule patterns, chosen (generation.mode = rules) or the fallback (the file and the reason)."""
    watch = ModelWatch(settings["model.path"] or None, settings["model.variant"], quiet=True)
    where = f"{watch.manifest_path} ({watch.variant})"
    if settings["generation.mode"] == "rules":
        loads = "loads" if not watch.problem else f"does not load: {watch.problem}"
        return Check("model", OK, f"generation.mode = rules: rule patterns play; the model "
                     f"{where} {loads}")
    if watch.problem:
        return Check("model", WARN, f"{watch.problem}; the module plays rule patterns instead "
                     "(the fallback: the record LED flips twice a second) and switches to the "
                     "model once it loads")
    return Check("model", OK, f"{where} loads: the model plays")


def audio_input_check(settings: Settings) -> Check | None:
    """input.source = audio: the chosen capture device opens at the configured rate (None when
    the groove comes from the gate jacks)."""
    if settings["input.source"] != "audio":
        return None
    from grooverack.runtime.listen import check_capture

    try:
        return Check("audio input", OK, f"{check_capture(settings)} opens (input.source = audio)")
    except Exception as exc:  # SourceError, PortAudio or JACK saying why
        hint = "" if "grooverack ports" in str(exc) else "; `grooverack ports` lists them"
        return Check("audio input", FAIL, f"{exc}{hint}")


def last_run_checks(path: Path) -> list[Check]:
    """The bus-fault counters the last `grooverack run` of this board left behind."""
    import json
    import time

    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        chips = dict(report["chips"])
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(report["updated"])))
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [Check("last run", WARN, f"{path}: unreadable fault report ({exc})")]
    checks = []
    for chip, c in sorted(chips.items()):
        text = (f"{c.get('faults', 0)} failed attempts in {c.get('bursts', 0)} bursts, "
                f"{c.get('recoveries', 0)} recoveries, {c.get('ok', 0)} good operations")
        if c.get("down_since") is not None:
            checks.append(Check(f"{chip} last run", FAIL, f"{text}; still not answering at "
                                f"{when} ({c.get('last_error', '')})"))
        elif c.get("faults", 0):
            checks.append(Check(f"{chip} last run", WARN, f"{text} (until {when}); last error: "
                                f"{c.get('last_error', '')}"))
        else:
            checks.append(Check(f"{chip} last run", OK, f"no bus faults (until {when})"))
    return checks


def panel_doctor(board: Any, settings: Settings, args: argparse.Namespace) -> list[Check]:
    """`doctor` of a Pi or sim board (`commands.backends` registry)."""
    return diagnose(board, dev=Path(args.dev), scans=max(0, args.scans))


def es9_doctor(board: Any, settings: Settings, args: argparse.Namespace) -> list[Check]:
    """`doctor` of an ES-9 board (`commands.backends` registry)."""
    return es9_checks(board, settings)


def midi_doctor(board: Any, settings: Settings, args: argparse.Namespace) -> list[Check]:
    """`doctor` of a MIDI board (`commands.backends` registry)."""
    return midi_checks(board, settings)


def run(args: argparse.Namespace) -> int:

    settings = load_settings(args.config, args.overrides)
    board = load_board(args.board or settings["board"])
    print(f"grooverack doctor: board {board.name!r} ({board.path}), kind {board.kind}")
    # the one registry of back ends says which checks a board's kind has
    checks = backend_for(board).load("doctor")(board, settings, args)
    checks.append(model_check(settings))
    audio = audio_input_check(settings)
    if audio is not None:
        checks.append(audio)
    if board.is_panel:
        checks += last_run_checks(faults_path(settings, board.name))
    for check in checks:
        print(check.line())
    fails = sum(c.status == FAIL for c in checks)
    warns = sum(c.status == WARN for c in checks)
    verdict = "ready to play" if not fails else "NOT ready"
    print(f"verdict: {verdict} ({len(checks) - fails - warns} ok, {warns} warnings, "
          f"{fails} failed)")
    sys.stdout.flush()
    return 1 if fails else 0
