"""An encoder-only fine-tune keeps the shipped latent bank (training.swap_encoder, issue 29)."""

from __future__ import annotations

import json
import shutil

from grooverack.model.runner import ModelRunner, sha256_file


def test_a_bank_built_with_the_encoder_a_fine_tune_started_from_stays(repo_root, tmp_path):
    shipped = repo_root / "models"
    folder = tmp_path / "models"
    shutil.copytree(shipped, folder, symlinks=False)
    manifest = json.loads((folder / "grooverack.json").read_text())
    name = manifest["variants"]["int8"]["encoder"]
    old = manifest["sha256"][name]
    # another encoder graph (the fp32 one) where the int8 one was: as a fine-tune leaves it
    shutil.copyfile(folder / manifest["variants"]["fp32"]["encoder"], folder / name)
    manifest["sha256"][name] = sha256_file(folder / name)
    manifest.pop("encoder_fine_tune", None)
    built = manifest["latent_bank"]["built"]
    built["encoder"], built["encoder_sha256"] = name, old
    (folder / "grooverack.json").write_text(json.dumps(manifest))
    assert ModelRunner(folder / "grooverack.json").latent_bank is None   # another encoder
    manifest["encoder_fine_tune"] = {"from": {name: old}}
    (folder / "grooverack.json").write_text(json.dumps(manifest))
    assert ModelRunner(folder / "grooverack.json").latent_bank is not None
