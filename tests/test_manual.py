"""The manual (issue 30 item 5): the README's first screen for a musician, its two commands
unchanged, every picture and link it names present, the quick-starts' keys real keys."""

from __future__ import annotations

import re
from pathlib import Path

from grooverack.config import load_settings

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
TRY = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/grooverack sim"
TEST = ('python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e '
        '".[dev,train,desktop]" && .venv/bin/python -m pytest -q')


def test_the_two_commands_are_unchanged_and_follow_the_musical_part() -> None:
    lines = README.splitlines()
    assert TRY in lines and TEST in lines
    first_command = lines.index(TRY)
    head = "\n".join(lines[:first_command])
    for words in ("FOLLOW", "MORPH", "What the knobs and jacks do", "Three patches",
                  "sequencer line", "clock and a reset", "drum machine"):
        assert words in head, words


def test_the_pictures_and_links_exist() -> None:
    for doc in (REPO / "README.md", REPO / "docs" / "reference.md", REPO / "docs" / "state.md",
                REPO / "deploy" / "README.md"):
        text = doc.read_text(encoding="utf-8")
        targets = re.findall(r"\]\(([^)#\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
        for target in targets:
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc}: {target} does not exist"
    for follow in ("0", "0.5", "1"):
        assert f"docs/roll-follow-{follow}.png" in README
        assert f"--set follow={follow}" in README or f"follow={follow}`" in README


def test_the_quick_start_keys_are_config_keys() -> None:
    for key in ("midi.api=jack", "es9.device=system", "clock.source=midi"):
        assert f"--set {key}" in README
    settings = load_settings(None, ["midi.api=jack", "es9.device=system", "clock.source=midi"])
    assert settings["midi.api"] == "jack" and settings["clock.source"] == "midi"
    assert "drums.wav" in README


def test_the_deploy_readme_says_rule_patterns_play_without_a_model() -> None:
    deploy = (REPO / "deploy" / "README.md").read_text(encoding="utf-8")
    assert "exits at start" not in deploy
    assert "rule patterns" in deploy
