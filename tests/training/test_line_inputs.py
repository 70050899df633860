"""Line-like input grooves for training (train --line-inputs, issue 29)."""

from __future__ import annotations

import numpy as np
import pytest


def test_line_groove_is_a_line_made_of_the_loops_own_onsets():
    torch = pytest.importorskip("torch")
    from grooverack.training.train import line_groove

    gen = torch.Generator().manual_seed(3)
    rng = np.random.default_rng(3)
    hits = torch.from_numpy((rng.random((256, 32, 9)) < 0.2).astype(np.float32))
    g = line_groove(hits, gen).numpy()
    assert g.shape == (256, 32, 3)
    onset, vel, off = g[..., 0], g[..., 1], g[..., 2]
    assert set(np.unique(onset)) <= {0.0, 1.0} and not off.any()          # on the grid
    assert np.all((vel == 0) == (onset == 0)) and vel.max() <= 1.0 and vel[onset > 0].min() >= 0.2
    played = hits.numpy().any(-1)
    inside = (onset > 0) & played
    assert inside.sum() / max(1, (onset > 0).sum()) > 0.85      # mostly the loop's own steps
    assert (onset > 0).sum() < played.sum()                     # a subset: fewer than the kit
    assert len({tuple(v.round(2)) for v in vel[:8]}) == 8       # velocities unlike the drums'
