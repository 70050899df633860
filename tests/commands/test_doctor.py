"""grooverack doctor: the sim board passes; missing nodes are named with the fix; dead chips,
stuck buses and busy inputs get their verdicts."""

from grooverack.backends.panel.hardware import build_hardware
from grooverack.boards.board import load_board
from grooverack.cli import main
from grooverack.commands.doctor import FAIL, OK, WARN, diagnose
from grooverack.emulators.world import EmulatedWorld


def test_sim_board_passes(capsys):
    assert main(["doctor", "--board", "sim"]) == 0
    out = capsys.readouterr().out
    assert "verdict: ready to play" in out
    assert "dac2 (MCP4728 at /dev/i2c-1 0x61): answers" in out


def test_missing_nodes_are_named_with_the_fix(tmp_path, capsys):
    assert main(["doctor", "--board", "reference", "--dev", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path}/spidev0.0 is missing: enable SPI" in out
    assert f"{tmp_path}/i2c-1 is missing: enable I2C" in out
    assert "GPIO node" in out and "chip probes: skipped" in out
    assert "verdict: NOT ready" in out


def test_a_file_that_is_not_a_device(tmp_path):
    (tmp_path / "spidev0.0").write_text("")
    checks = diagnose(load_board("reference"), dev=tmp_path)
    assert any(c.status == FAIL and "not a character device" in c.detail for c in checks)


def emulated(board_name="sim"):
    board = load_board(board_name)
    world = EmulatedWorld(board)
    hw = build_hardware(board, spi=world.spi, i2c=world.i2c, gpio_module=world.gpio,
                        clock=world.clock, sleep_for=world.sleep_for, retry_sleep=lambda s: None)
    return board, world, hw


def by_part(checks):
    return {c.part.split(" ")[0]: c for c in checks if "bus health" not in c.part}


def test_dead_dac_stuck_miso_and_a_patched_gate():
    board, world, hw = emulated()
    del world.buses[1].devices[0x61]              # dac2 not soldered: NACK
    world.spis["adc"].miso_stuck = 0xFF           # MISO floating high
    world.set_digital("gate", 5.0)                # a gate held high at rest
    checks = diagnose(board, hardware=hw, scans=5)
    parts = by_part(checks)
    assert parts["dac1"].status == OK
    assert parts["dac2"].status == FAIL
    assert parts["adc"].status == FAIL and "MISO stuck high" in parts["adc"].detail
    assert parts["gate"].status == WARN
    health = [c for c in checks if c.part == "dac2 bus health"]
    assert health and health[0].status == FAIL and "Errno 121" in health[0].detail


def test_nack_burst_shows_in_bus_health():
    board, world, hw = emulated()
    world.buses[1].nack_burst(2, address=0x60)    # dac1 misses twice, then answers
    checks = diagnose(board, hardware=hw, scans=5)
    parts = by_part(checks)
    assert parts["dac1"].status == OK                         # the retry got through
    health = [c for c in checks if c.part == "dac1 bus health"]
    assert health and health[0].status == WARN and "2 failed attempts" in health[0].detail


def test_cv_offset_warns_and_budget_dac_is_unverifiable(tmp_path):
    board, world, hw = emulated()
    world.set_cv("pitch", 2.0)
    assert by_part(diagnose(board, hardware=hw, scans=0))["adc"].status == WARN
    base = load_board("budget").path
    sim = tmp_path / "b.toml"
    sim.write_text(f"name = 'b'\nkind = 'sim'\nbase = '{base}'\n")
    checks = by_part(diagnose(load_board(sim), scans=3))
    assert checks["adc"].status == OK and "pitch +0.000 V" in checks["adc"].detail
    assert checks["trig12"].status == WARN and "write-only" in checks["trig12"].detail


def test_doctor_reports_the_last_runs_bus_faults(tmp_path, capsys):
    from grooverack.backends.panel.hardware import save_faults

    faults = {"adc": {"ok": 9000, "faults": 0, "bursts": 0, "recoveries": 0, "down_since": None},
              "dac1": {"ok": 500, "faults": 31, "bursts": 2, "recoveries": 2, "down_since": None,
                       "last_error": "OSError: [Errno 121] Remote I/O error"}}
    save_faults(tmp_path / "bus-faults-sim.json", "sim", faults, 0.0)
    assert main(["doctor", "--board", "sim", "--set", f"state.dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "ok    adc last run: no bus faults" in out
    assert "warn  dac1 last run: 31 failed attempts in 2 bursts, 2 recoveries" in out
    faults["dac1"]["down_since"] = 12.5
    save_faults(tmp_path / "bus-faults-sim.json", "sim", faults, 0.0)
    assert main(["doctor", "--board", "sim", "--set", f"state.dir={tmp_path}"]) == 1
    assert "FAIL  dac1 last run" in capsys.readouterr().out


def test_platform_checks_name_model_kernel_i2c_clock_and_gpio_library(tmp_path):
    from grooverack.commands.doctor import platform_checks

    board = load_board("reference")
    (tmp_path / "proc" / "device-tree").mkdir(parents=True)
    (tmp_path / "proc" / "device-tree" / "model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    (tmp_path / "boot" / "firmware").mkdir(parents=True)
    config = tmp_path / "boot" / "firmware" / "config.txt"
    config.write_text("dtparam=i2c_arm=on\n")
    checks = {c.part: c for c in platform_checks(board, tmp_path)}
    assert checks["Pi model"].status == OK and "Pi 4 Model B" in checks["Pi model"].detail
    assert checks["I2C clock"].status == WARN and "100 kHz" in checks["I2C clock"].detail
    assert "dtparam=i2c_arm_baudrate=400000" in checks["I2C clock"].detail
    config.write_text("dtparam=i2c_arm=on\ndtparam=i2c_arm_baudrate=400000  # fast mode\n")
    checks = {c.part: c for c in platform_checks(board, tmp_path)}
    assert checks["I2C clock"].status == OK and "400 kHz" in checks["I2C clock"].detail
    assert "RPi.GPIO API from" in checks["GPIO library"].detail
    assert "kernel" in checks
    empty = {c.part: c for c in platform_checks(board, tmp_path / "nothing")}
    assert empty["Pi model"].status == WARN
