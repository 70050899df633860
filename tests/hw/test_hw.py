"""The hardware of record (issue 32): the netlist of record in hw/circuits/ against its own
electrical rules and against the board files, the generated build pack being current, the
panel's drilling drawing, the power figure, and every front end simulated in ngspice against
the board file's numbers and `grooverack calibrate`'s accepted range.

ngspice is a real program these tests run (`ngspice -b`); where it is missing the simulation
tests skip with a message, except in CI (CI or GROOVERACK_REQUIRE_NGSPICE set), where they fail.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from pathlib import Path

import pytest
from grooverack.boards.board import load_board
from grooverack.boards.drawing import BODY_MM, HOLE_MM, drill_holes

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hw"))

from circuits import power, simulate  # noqa: E402
from circuits.boards import BOARDS, reference  # noqa: E402
from circuits.checks import against_board, erc  # noqa: E402
from circuits.decks import SPECS, board_decks  # noqa: E402
from circuits.netlist import GND  # noqa: E402

MC_RUNS_CI = 100


def _generate():
    spec = importlib.util.spec_from_file_location("hw_generate", REPO / "hw" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def need_ngspice() -> None:
    if simulate.ngspice() is None:
        if os.environ.get("CI") or os.environ.get("GROOVERACK_REQUIRE_NGSPICE"):
            pytest.fail("ngspice is required here (CI / GROOVERACK_REQUIRE_NGSPICE) but missing")
        pytest.skip("ngspice is not installed: the circuit simulations are skipped "
                    "(Debian: apt-get install ngspice)")


# --- the netlist of record -----------------------------------------------------------------

@pytest.mark.parametrize("name", list(BOARDS))
def test_electrical_rules(name):
    assert erc(BOARDS[name]()) == []


@pytest.mark.parametrize("name", list(BOARDS))
def test_circuit_matches_its_board_file(name):
    """Every jack, pot, button and LED of the board file reaches the chip channel or Pi header
    pin the board file names; chips on the bus, select line and address it names."""
    assert against_board(BOARDS[name](), load_board(name)) == []


def test_electrical_rules_catch_faults():
    c = reference()
    part = next(p for p in c.sorted_parts() if p.type.key == "TL074")
    part.nets[part.type.pin("V-").number] = "NOWHERE"            # a supply pin off its rail
    mcp = next(p for p in c.sorted_parts() if p.type.key == "MCP6004")
    out1, out2 = mcp.type.pin("OUT1").number, mcp.type.pin("OUT2").number
    mcp.nets[out2] = mcp.nets[out1]                               # two outputs on one net
    problems = "\n".join(erc(c))
    assert "supply pin V-: on NOWHERE" in problems
    assert "net NOWHERE: only one pin" in problems
    assert "driven by 2 outputs" in problems
    led = next(p for p in c.sorted_parts() if p.type.key == "LM393")
    led.nets[led.type.pin("GND").number] = "+3V3"
    assert "ground pin GND: on +3V3" in "\n".join(erc(c))


def test_board_check_catches_swapped_pins_and_channels():
    c = reference()
    header = next(p for p in c.sorted_parts() if p.type.key == "PI40")
    header.nets["11"], header.nets["13"] = header.nets["13"], header.nets["11"]  # GPIO 17 <-> 27
    problems = "\n".join(against_board(c, load_board("reference")))
    assert "gpio_inputs.gate: GPIO 17" in problems and "gpio_inputs.clock: GPIO 27" in problems
    board = load_board("reference")
    pitch = dataclasses.replace(board.inputs["pitch"], channel=5)   # the board file moves PITCH
    moved = dataclasses.replace(board, inputs={**board.inputs, "pitch": pitch})
    problems = "\n".join(against_board(reference(), moved))
    assert "inputs.pitch:" in problems and "reaches ['pots.tempo']" in problems
    dac = dataclasses.replace(board.chips["dac2"], device=0x63)
    problems = "\n".join(against_board(reference(),
                                       dataclasses.replace(board, chips={**board.chips,
                                                                         "dac2": dac})))
    assert "chips.dac2: I2C address 0x63" in problems
    c = reference()
    header = next(p for p in c.sorted_parts() if p.type.key == "PI40")
    header.nets["27"] = "GPIO0_EXTRA"                              # a pin the board never names
    problems = "\n".join(against_board(c, load_board("reference")))
    assert "GPIO 0 (pin 27, net GPIO0_EXTRA): wired on the circuit, named nowhere" in problems


def test_generated_files_are_current():
    """hw/pack/*, docs/drill-*.svg and hw/README.md's power table are what hw/generate.py
    makes from the description (run `python hw/generate.py` after changing hw/circuits/)."""
    gen = _generate()
    wanted = gen.files()
    stale = [str(p.relative_to(REPO)) for p, text in wanted.items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    assert stale == [], f"regenerate with `python hw/generate.py`: {stale}"
    readme = gen.README.read_text(encoding="utf-8")
    assert gen.block(readme, "power") == gen.power_block()


def test_kicad_netlist_and_bom_shape():
    root = REPO / "hw" / "pack" / "reference"
    net = (root / "reference.net").read_text(encoding="utf-8")
    assert net.startswith('(export (version "D")')
    assert net.count("(comp (ref") == len(reference().parts)
    assert net.count("(") == net.count(")")
    assert '(net (code "1")' in net and f'(name "{GND}")' in net
    import csv
    rows = list(csv.DictReader((root / "bom.csv").open(encoding="utf-8")))
    placed = [r for r in rows if r["refs"]]
    assert sum(int(r["quantity"]) for r in placed) == len(reference().parts)
    assert all(r["mpn"] and r["footprint"] and r["package"] for r in placed)
    mpns = {r["mpn"] for r in placed}
    assert {"TL074CDR", "MCP6004-I/SL", "LM393DR", "MCP3208-CI/SL", "MCP4728-E/UN",
            "MCP4728A1-E/UN", "MCP4728A2-E/UN", "PCA9306DCUR", "TSR 3-2450", "PJ398SM"} <= mpns


# --- power --------------------------------------------------------------------------------

def test_power_figure_on_both_readmes_and_regulator_margin():
    b = power.budget(reference())
    for readme in (REPO / "README.md", REPO / "hw" / "README.md"):
        assert b.headline in " ".join(readme.read_text(encoding="utf-8").split()), readme
    assert b.five[1] <= 0.7 * power.TSR_RATED          # the regulator keeps 30 % in hand
    assert "TSR 2-2450" not in (REPO / "hw" / "README.md").read_text().replace(
        "named a\nTSR 2-2450", "")


# --- the panel's drilling drawing ------------------------------------------------------------

@pytest.mark.parametrize("name", list(BOARDS))
def test_drill_drawing_has_every_part_inside_the_panel(name):
    board = load_board(name)
    width, height, holes = drill_holes(board)
    assert height == pytest.approx(128.5) and width == pytest.approx(16 * 5.08 - 0.3)
    kinds = [h[0] for h in holes]
    jacks = len(board.inputs) + len(board.outputs) + len(board.gpio_outputs) + sum(
        1 for i in board.gpio_inputs.values() if i.role != "button") - sum(
        1 for o in board.gpio_outputs.values() if o.kind == "led")
    assert kinds.count("jack") == jacks
    assert kinds.count("pot") == len(board.pots)
    assert kinds.count("button") == sum(1 for i in board.gpio_inputs.values() if i.role == "button")
    assert kinds.count("led") == 1 and kinds.count("rail") == 4
    assert all(d == HOLE_MM[k] for k, _, _, _, d in holes)
    parts = [h for h in holes if h[0] != "rail"]
    for _kind, label, x, y, d in parts:   # inside the panel, clear of the rail screws' strip
        assert d / 2 < x < width - d / 2 and y - d / 2 > 10.0 and y + d / 2 < height - 6.0, label
    for i, a in enumerate(parts):        # no two bodies behind the panel overlap
        for b in parts[i + 1:]:
            gap = ((a[2] - b[2]) ** 2 + (a[3] - b[3]) ** 2) ** 0.5
            assert gap >= (BODY_MM[a[0]] + BODY_MM[b[0]]) / 2, (a[1], b[1], gap)


# --- ngspice -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def simulated():
    need_ngspice()
    return {name: simulate.evaluate(BOARDS[name](), load_board(name), MC_RUNS_CI)
            for name in BOARDS}


@pytest.mark.parametrize("name", list(BOARDS))
def test_every_front_end_meets_its_board_file_and_limits(simulated, name):
    checks, spreads = simulated[name]
    failed = [f"{c.deck}: {c.what}: {c.value} (limit {c.limit})" for c in checks if not c.ok]
    assert failed == []
    assert {s.deck for s in spreads} == {f"{s.name}" for s in SPECS[name]
                                          if s.kind in ("cv_in", "vel_in", "dac_out")}
    for s in spreads:   # calibrate accepts every run of the Monte Carlo
        assert s.runs == MC_RUNS_CI and s.accepted == s.runs, s


def test_readme_simulation_table_is_current(simulated):
    """The check rows of hw/README.md's simulation table are what the decks give now (the
    Monte Carlo rows there come from 1,000 runs: `python hw/generate.py`)."""
    gen = _generate()
    committed = gen.block(gen.README.read_text(encoding="utf-8"), "simulation")
    for name, (checks, spreads) in simulated.items():
        fresh = simulate.table(name, checks, spreads)
        for line in fresh.splitlines():
            if line.startswith("| `") and " of " not in line:
                assert line in committed, f"hw/README.md is stale (python hw/generate.py): {line}"
        for s in spreads:
            assert f"| `{s.deck}` | `{s.channel}` |" in committed
    assert committed.count("| 1000 of 1000 |") == sum(len(sp) for _, sp in simulated.values())


def test_a_board_file_that_disagrees_with_its_circuit_fails():
    need_ngspice()
    board = load_board("reference")
    decks = board_decks(reference())
    spec = next(s for s in SPECS["reference"] if s.name == "cv_in")
    out, tables = simulate.run(decks["cv_in.cir"], "cv_in.cir")
    assert all(c.ok for c in simulate._input(spec, board, out, tables))
    pitch = board.inputs["pitch"]
    for wrong in (dataclasses.replace(pitch, gain=pitch.gain * 1.02),
                  dataclasses.replace(pitch, offset=pitch.offset + 0.1)):
        bad = dataclasses.replace(board, inputs={**board.inputs, "pitch": wrong})
        first = simulate._input(spec, bad, out, tables)[0]
        assert not first.ok, first
    vel = next(s for s in SPECS["reference"] if s.name == "vel_out")
    out, tables = simulate.run(decks["vel_out.cir"], "vel_out.cir")
    v1 = board.outputs["velocity_1"]
    bad = dataclasses.replace(board, outputs={**board.outputs,
                                              "velocity_1": dataclasses.replace(v1, gain=0.0025)})
    assert not simulate._dac(vel, bad, out, tables)[0].ok


def test_a_channel_built_like_another_must_carry_its_scaling():
    """ACC 1..3 and RESET OUT are the velocity outputs' stage: a board file giving one of them
    another gain disagrees with the circuit (no ngspice needed for this one)."""
    board = load_board("reference")
    vel = next(s for s in SPECS["reference"] if s.name == "vel_out")
    assert all(c.ok for c in simulate._siblings(reference(), board, vel))
    acc = dataclasses.replace(board.outputs["accent_2"], gain=0.003)
    bad = dataclasses.replace(board, outputs={**board.outputs, "accent_2": acc})
    (check,) = simulate._siblings(reference(), bad, vel)
    assert not check.ok and "outputs.accent_2" in check.value


def test_grooverack_panel_drill_writes_the_committed_drawing(tmp_path):
    from grooverack.cli import main
    out = tmp_path / "drill.svg"
    assert main(["panel", "--board", "budget", "--drill", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == (REPO / "docs" / "drill-budget.svg").read_text(
        encoding="utf-8")
