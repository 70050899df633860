"""`grooverack ports`: the MIDI ports and audio devices this machine has, by the names that
`midi.input_port`, `midi.output_port`, `es9.device` and `input.audio_device` match (a substring
is enough; `jack:PORT` for a JACK audio port)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from grooverack.backends.midi.ports import api_id, load_rtmidi

API_NAMES = {"alsa": "ALSA", "jack": "JACK", "default": "default"}


def midi_ports(api: str) -> tuple[list[str], list[str]]:
    """(input names, output names) through python-rtmidi's `api` (default/alsa/jack)."""

    rtmidi = load_rtmidi()
    midi_in = rtmidi.MidiIn(api_id(api), name="grooverack ports")
    midi_out = rtmidi.MidiOut(api_id(api), name="grooverack ports")
    try:
        return midi_in.get_ports(), midi_out.get_ports()
    finally:
        midi_in.delete()
        midi_out.delete()


def compiled_apis() -> list[str]:
    rtmidi = load_rtmidi()
    have = set(rtmidi.get_compiled_api())
    return [name for name, api in (("alsa", rtmidi.API_LINUX_ALSA), ("jack", rtmidi.API_UNIX_JACK))
            if api in have] or ["default"]


def audio_devices() -> list[dict[str, Any]]:
    """Every PortAudio device: index, name, host API, channel counts, default rate."""
    import sounddevice as sd

    apis = sd.query_hostapis()
    return [{"index": i, "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
             "inputs": d["max_input_channels"], "outputs": d["max_output_channels"],
             "samplerate": d["default_samplerate"]}
            for i, d in enumerate(sd.query_devices())]


def report(apis: list[str]) -> str:
    lines = []
    for api in apis:
        try:
            ins, outs = midi_ports(api)
        except Exception as exc:  # e.g. JACK compiled in but no server running
            lines.append(f"MIDI ({API_NAMES[api]}): not available: {exc}")
            continue
        lines.append(f"MIDI inputs ({API_NAMES[api]}; midi.api = \"{api}\", midi.input_port):")
        lines += [f"  {name}" for name in ins] or ["  (none)"]
        lines.append(f"MIDI outputs ({API_NAMES[api]}; midi.output_port):")
        lines += [f"  {name}" for name in outs] or ["  (none)"]
    try:
        devices = audio_devices()
    except Exception as exc:  # PortAudio missing
        lines.append(f"audio devices: not available: {exc}")
    else:
        lines.append("audio devices (es9.device):")
        lines += [f"  {d['index']:>3}  {d['name']}  [{d['hostapi']}]  {d['inputs']} in / "
                  f"{d['outputs']} out, {d['samplerate']:g} Hz" for d in devices] or ["  (none)"]
        lines.append("capture devices (input.audio_device, with input.source = audio):")
        lines += [f"  {d['index']:>3}  {d['name']}  [{d['hostapi']}]  {d['inputs']} in, "
                  f"{d['samplerate']:g} Hz" for d in devices if d["inputs"] > 0] or ["  (none)"]
    jack_ports = jack_capture_ports()
    if jack_ports is not None:
        lines.append("JACK audio sources (input.audio_device = \"jack:PORT\"):")
        lines += [f"  jack:{name}" for name in jack_ports] or ["  (none)"]
    return "\n".join(lines)


def jack_capture_ports() -> list[str] | None:
    """The JACK audio output ports (what a JACK input of ours can hear), None without a server."""
    try:
        import jack

        jack.set_error_function(lambda _msg: None)
        jack.set_info_function(lambda _msg: None)
        client = jack.Client("grooverack-ports", no_start_server=True)
    except Exception:  # no libjack, no server
        return None
    finally:
        try:
            jack.set_error_function()
            jack.set_info_function()
        except Exception:
            pass
    try:
        return [p.name for p in client.get_ports(is_audio=True, is_output=True)]
    finally:
        client.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", choices=("alsa", "jack", "default"), action="append",
                        help="MIDI system(s) to list (default: every one python-rtmidi has)")


def run(args: argparse.Namespace) -> int:
    apis = args.api or compiled_apis()
    print(report(apis))
    sys.stdout.flush()
    return 0
