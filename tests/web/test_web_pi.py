"""The page's link on a Pi board's loop (`run_backend(..., hook=)`), over emulated hardware: a
command from the web side reaches the engine, the snapshot shows what plays, and the bus faults
per chip reach the page."""

from __future__ import annotations

import os
import signal
import threading
from types import SimpleNamespace

from grooverack.backends.panel import loop
from grooverack.web.link import EngineLink

from tests.backends.test_panel_run import rig, wait_for  # noqa: F401  (the emulated reference board)


def test_a_pi_loop_serves_the_link(rig):  # noqa: F811
    board, world, settings = rig
    link = EngineLink()
    seen: dict[str, object] = {}

    def web_side():
        seen["ready"] = wait_for(lambda: link.latest is not None and link.latest.running)
        future = link.submit("control", "follow", 0.2)
        seen["applied"] = future.result(5.0)
        seen["state"] = wait_for(lambda: link.latest.controls["follow"] == 0.2)
        seen["faults"] = dict(link.fault_counts())
        os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=web_side)
    helper.start()
    status = loop.run_backend(board, settings, SimpleNamespace(duration=30.0), hook=link)
    helper.join()
    assert status == 0
    assert seen["ready"] and seen["applied"] == 0.2 and seen["state"]
    assert set(seen["faults"]) == {"adc", "adc2", "dac1", "dac2", "dac3"}
    assert all(v == 0 for v in seen["faults"].values())
