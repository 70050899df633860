"""`grooverack preset --from-midi FILE [--slot A|B]`: your own drum loop as latent A or B.

The shipped encoder reads the loop's groove (`web.library.midi_loop_file`); its latent becomes A
or B of the current preset (the slot the last performance had, else 1) in the state directory,
and of the performance state, so the next start plays from it. A module running at the same time
writes its own state when it stops: use the page (drop the file on it) while it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grooverack.commands.common import add_common
from grooverack.config import make_settings
from grooverack.errors import GrooverackError
from grooverack.state import PerformanceState, Preset, StateStore, panel_from_settings, state_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--from-midi", metavar="FILE", required=True,
                        help="a 1- or 2-bar drum MIDI loop (channel 10 or GM drum notes)")
    parser.add_argument("--slot", choices=("A", "B", "a", "b"), default="A",
                        help="which latent the loop becomes (default A)")
    parser.add_argument("--preset", type=int, metavar="N",
                        help="the preset slot to write (default: the current one)")


def run(args: argparse.Namespace) -> int:
    from grooverack.model.runner import ModelRunner
    from grooverack.web.library import check_slot, encode_loop, midi_loop_file

    settings = make_settings(args)
    path = Path(args.from_midi)
    if not path.is_file():
        raise GrooverackError(f"--from-midi {path}: no such file")
    loop = midi_loop_file(path)
    runner = ModelRunner(settings["model.path"] or None, settings["model.variant"])
    z = encode_loop(loop, runner)
    store = StateStore(state_dir(settings))
    performance = store.load_performance()
    number = check_slot("--preset", args.preset if args.preset is not None
                        else (performance.preset or 1))
    preset = store.load_preset(number) or Preset(panel=panel_from_settings(settings))
    side = args.slot.lower()
    other = preset.latent_b if side == "a" else preset.latent_a
    if len(other) != len(z):  # an empty or other-model half: both halves from the loop
        other = list(z)
    a, b = (z, other) if side == "a" else (other, z)
    store.save_preset(number, Preset(a, b, preset.panel))
    store.save_performance(PerformanceState(a, b, performance.panel or preset.panel,
                                            performance.groove, number))
    print(f"grooverack preset: {path.name} ({loop.hits} hits, {loop.bars} bar(s)) is latent "
          f"{side.upper()} of preset {number} in {store.dir}", file=sys.stderr)
    return 0
