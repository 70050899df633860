"""A tiny training run on synthetic loops: it trains, checkpoints, resumes exactly, exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch (extra 'train')")

from grooverack.model.runner import MANIFEST_NAME, ModelRunner  # noqa: E402
from grooverack.training import export, train  # noqa: E402
from grooverack.training.data import Loops, make_groove  # noqa: E402
from grooverack.voices import NUM_VOICES, STEPS  # noqa: E402

TINY = {"latent_size": 8, "enc_d": 16, "enc_heads": 2, "enc_ff": 32, "enc_layers": 1,
        "dec_d": 16, "dec_heads": 2, "dec_ff": 32, "dec_layers": 1, "squeeze": 2}
GENRES = ["any", "funk", "rock"]


def loops(n: int, seed: int) -> Loops:
    rng = np.random.default_rng(seed)
    hits = (rng.random((n, STEPS, NUM_VOICES)) < 0.15).astype(np.float32)
    vel = (hits * rng.uniform(0.2, 1.0, hits.shape)).astype(np.float32)
    off = (hits * rng.uniform(-0.5, 0.49, hits.shape)).astype(np.float32)
    return Loops(hits, vel, off, make_groove(hits, vel, off).astype(np.float32),
                 rng.integers(0, 2, n).astype(np.int64), [f"synthetic/{i}" for i in range(n)],
                 rng.choice([70.0, 95.0, 120.0, 174.0], n).astype(np.float32))


SPLITS = {"train": loops(32, 0), "validation": loops(16, 1)}


def config(epochs: int) -> train.TrainConfig:
    return train.TrainConfig(epochs=epochs, batch_size=8, warmup_steps=2, beta_cycle_epochs=2,
                             seed=5)


def run(out: Path, epochs: int, **kw) -> dict:
    return train.train(SPLITS, out, config(epochs), model_overrides=TINY, genres=GENRES,
                       data_hash="synthetic", progress=False, threads=1, **kw)


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def test_two_steps_write_a_checkpoint(tmp_path: Path) -> None:
    summary = run(tmp_path, epochs=1, max_steps=2)
    ckpt = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["step"] == 2 and ckpt["epoch"] == 1
    assert ckpt["genres"] == GENRES and ckpt["data_hash"] == "synthetic"
    assert (tmp_path / "history.jsonl").read_text().count("\n") == 1
    assert 0.0 <= ckpt["history"][0]["val_f1"] <= 1.0
    assert summary["epochs"] == 1


def test_training_changes_the_weights(tmp_path: Path) -> None:
    torch.manual_seed(5)
    from grooverack.training.vae import GrooveVAE, VAEConfig

    initial = GrooveVAE(VAEConfig(n_genres=len(GENRES), **TINY)).state_dict()
    run(tmp_path, epochs=1, max_steps=2)
    trained = weights(tmp_path / "last.pt")
    assert any(not torch.equal(initial[k], trained[k]) for k in initial)


def test_resume_continues_exactly(tmp_path: Path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    run(straight, epochs=2)
    run(split, epochs=2, max_steps=4)  # stops after epoch 1 (4 steps of 8 loops)
    first = weights(split / "last.pt")
    assert any(not torch.equal(first[k], weights(straight / "last.pt")[k]) for k in first)
    run(split, epochs=2, resume=True)
    a, b = weights(straight / "last.pt"), weights(split / "last.pt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_same_seed_same_result(tmp_path: Path) -> None:
    run(tmp_path / "a", epochs=1, max_steps=3)
    run(tmp_path / "b", epochs=1, max_steps=3)
    a, b = weights(tmp_path / "a" / "last.pt"), weights(tmp_path / "b" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_exports_and_runs(tmp_path: Path) -> None:
    run(tmp_path / "run", epochs=2)
    model, info = export.load_checkpoint(tmp_path / "run" / "last.pt")
    assert info["trained"] and info["genres"] == GENRES
    export.export_model(model, info, tmp_path / "models", calibration=16, synthetic=True,
                        verbose=False, int8="dynamic")
    runner = ModelRunner(tmp_path / "models" / MANIFEST_NAME)
    assert runner.trained and runner.latent_size == 8 and runner.data_hash == "synthetic"
    h, v, o = runner.decode(runner.encode(SPLITS["validation"].groove[0])[0], genre=1)
    assert h.shape == (STEPS, NUM_VOICES)


def test_thresholds_and_f1_helpers() -> None:
    rng = np.random.default_rng(0)
    hits = (rng.random((64, STEPS, NUM_VOICES)) < 0.2).astype(np.float32)
    perfect = hits * 0.9 + 0.05
    from grooverack.training.evaluate import choose_thresholds, micro_f1

    for objective in ("voice", "micro", "balanced"):
        th = choose_thresholds(perfect, hits, objective=objective)
        assert micro_f1(perfect, hits, th) == pytest.approx(1.0)
    assert micro_f1(np.zeros_like(hits), hits, 0.5) == 0.0
    w = train.positive_weights(hits * (np.arange(NUM_VOICES) < 4), cap=8.0)
    assert w[0] >= 1.0 and w[-1] == 8.0  # an absent voice gets the cap


def test_checkpoint_keeps_ema_and_raw_weights(tmp_path: Path) -> None:
    run(tmp_path, epochs=1, max_steps=4)
    ckpt = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=False)
    ema, raw = ckpt["model"], ckpt["raw"]
    assert set(ema) == set(raw)
    assert any(not torch.equal(ema[k], raw[k]) for k in ema)  # the average lags the optimizer


def test_ema_off_saves_the_raw_weights(tmp_path: Path) -> None:
    cfg = config(1)
    cfg.ema_decay = 0.0
    train.train(SPLITS, tmp_path, cfg, model_overrides=TINY, genres=GENRES,
                data_hash="synthetic", progress=False, threads=1, max_steps=2)
    ckpt = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=False)
    assert all(torch.equal(ckpt["model"][k], ckpt["raw"][k]) for k in ckpt["model"])


def test_teacher_targets_follow_swap_and_genre() -> None:
    b = 4
    hits = torch.zeros(b, STEPS, NUM_VOICES)
    teacher = torch.zeros(b, 2, 2, STEPS, NUM_VOICES, dtype=torch.float16)
    for s in range(2):
        for g in range(2):
            teacher[:, s, g] = 0.1 + 0.2 * s + 0.4 * g  # a distinct value per (swap, genre)
    batch = {"groove": torch.zeros(b, STEPS, 3), "hits": hits, "velocities": hits.clone(),
             "offsets": hits.clone(), "style": torch.zeros(b, dtype=torch.long),
             "teacher": teacher}
    cfg = train.TrainConfig(distill=1.0, bar_swap=0.5, genre_dropout=0.5)
    gen = torch.Generator().manual_seed(3)
    seen = set()
    for _ in range(20):
        out = train.augment(batch, cfg, gen, n_genres=3)
        for i in range(b):
            value = round(float(out["hits"][i, 0, 0]), 3)
            genre_kept = int(out["genre"][i]) != 0
            assert value in (0.1, 0.3, 0.5, 0.7)
            assert (value >= 0.5) == genre_kept  # the teacher's "style" probability with a genre
            seen.add(value)
    assert seen == {0.1, 0.3, 0.5, 0.7}
    cfg.distill = 0.25  # a mix: truth (0 here) weighs 0.75
    out = train.augment(batch, cfg, gen, n_genres=3)
    assert float(out["hits"].max()) <= 0.25 * 0.7 + 1e-6


def test_training_with_a_teacher(tmp_path: Path) -> None:
    run(tmp_path / "teacher", epochs=1, max_steps=4)
    teacher = tmp_path / "teacher" / "best.pt"
    if not teacher.is_file():
        teacher = tmp_path / "teacher" / "last.pt"
    targets = train.teacher_targets([str(teacher)], SPLITS["train"], GENRES)
    assert targets.shape == (32, 2, 2, STEPS, NUM_VOICES)
    assert float(targets.min()) >= 0.0 and float(targets.max()) <= 1.0
    # the swapped-input probabilities are the teacher on the rolled groove, not a rolled copy
    assert not np.array_equal(targets[:, 0], targets[:, 1])
    run(tmp_path / "student", epochs=1, max_steps=2, teachers=[str(teacher)])
    ckpt = torch.load(tmp_path / "student" / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["teachers"] == [str(teacher)]


def test_a_teacher_with_other_genres_is_refused(tmp_path: Path) -> None:
    train.train(SPLITS, tmp_path / "t", config(1), model_overrides=TINY,
                genres=["any", "jazz", "punk", "soul"], data_hash="synthetic", progress=False,
                threads=1, max_steps=2)
    with pytest.raises(SystemExit, match="other genres"):
        train.teacher_targets([str(tmp_path / "t" / "last.pt")], SPLITS["train"], GENRES)
    with pytest.raises(SystemExit, match="missing.pt"):
        train.teacher_targets([str(tmp_path / "missing.pt")], SPLITS["train"], GENRES)


REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "models" / "train-shipped.sh"


def test_shipped_recipe_script_calls_valid_commands(tmp_path: Path) -> None:
    """models/train-shipped.sh, run with a recorder in place of grooverack: every call parses with
    the real command line, and each student's teachers were trained by an earlier call."""
    import json
    import shlex
    import shutil
    import subprocess

    from grooverack.cli import build_parser
    from grooverack.training.train import model_overrides
    from grooverack.training.vae import VAEConfig

    log = tmp_path / "calls"
    recorder = tmp_path / "gr"
    recorder.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s " "$a"; done >> {log}\n'
                        f'echo >> {log}\n')
    recorder.chmod(0o755)
    pylog = tmp_path / "python-calls"
    py_recorder = tmp_path / "py"
    py_recorder.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s " "$a"; done >> {pylog}\n'
                           f'echo >> {pylog}\n')
    py_recorder.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "GROOVERACK": str(recorder), "PYTHON": str(py_recorder)}
    subprocess.run(["bash", str(RECIPE), str(tmp_path / "runs")], check=True, env=env,
                   cwd=tmp_path)
    calls = [shlex.split(line) for line in log.read_text().splitlines()]
    # the Python steps name a module of the package or a script of the repository that exists
    import importlib.util
    for argv in (shlex.split(line) for line in pylog.read_text().splitlines()):
        if argv[0] == "-m":
            assert importlib.util.find_spec(argv[1]) is not None, argv
        else:
            assert (REPO / argv[0]).is_file(), argv
    assert [c[0] for c in calls].count("train") >= 5
    exports = [i for i, c in enumerate(calls) if c[0] == "export"]
    # the last export writes models/ and only evaluations follow it (an earlier one feeds a
    # checkpoint recovered from its graphs: training.recover)
    last = build_parser().parse_args(calls[exports[-1]])
    assert last.out == "models"
    if last.keep_encoder:  # the encoder files of an earlier export (the same encoder weights)
        kept = Path(last.keep_encoder).parent
        assert any(build_parser().parse_args(calls[i]).out == str(kept) for i in exports[:-1])
    # after it: evaluations, and the encoder-only fine-tune for sequencer lines (issue 29; its
    # encoder goes in through training.swap_encoder, the decoders stay)
    later = calls[exports[-1] + 1:]
    assert all(c[0] == "eval" or (c[0] == "train" and "--train-only" in c
                                  and c[c.index("--train-only") + 1] == "encoder.")
               for c in later), later
    parser = build_parser()
    made: set[str] = set()
    for argv in (shlex.split(line) for line in pylog.read_text().splitlines()):
        if argv[:2] == ["-m", "grooverack.training.recover"]:
            made.add(str(Path(argv[argv.index("--out") + 1]).parent))
    trained: dict = {}
    for argv in calls:
        args = parser.parse_args(argv)
        if argv[0] == "train":
            for teacher in args.teacher:
                assert str(Path(teacher).parent) in made, f"{teacher} used before it is trained"
            if args.init:
                assert str(Path(args.init).parent) in made, f"{args.init} used before it is trained"
            made.add(args.out)
            trained[args.out] = args
        if argv[0] == "export":
            assert str(Path(args.checkpoint).parent) in made
            exported = trained[str(Path(args.checkpoint).parent)]  # the last one: models/
    # the run the script exports is the one behind the shipped manifest: same architecture,
    # teachers (by run name) and the settings that change a run's arithmetic
    manifest = json.loads((REPO / "models" / "grooverack.json").read_text())
    shipped = manifest["training"]["train_args"]
    config = {**VAEConfig().to_dict(), **model_overrides(exported.model)}
    if exported.tempo:
        config["tempo"] = True
    config["n_genres"] = manifest["model"]["config"]["n_genres"]
    # a manifest written before a config field existed holds that field's default
    assert config == VAEConfig.from_dict(manifest["model"]["config"]).to_dict()
    assert ([Path(t).parent.name for t in exported.teacher]
            == [Path(t).parent.name for t in shipped["teacher"]])
    assert (Path(exported.init).parent.name if exported.init else None) == (
        Path(shipped["init"]).parent.name if shipped.get("init") else None)
    for key in ("seed", "threads", "epochs", "batch_size", "lr", "beta_max", "distill",
                "ema_decay", "genre_dropout", "no_genres", "tempo_dropout"):
        if key in shipped:
            assert getattr(exported, key) == shipped[key], key
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", str(RECIPE)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


def test_resume_refuses_other_teachers(tmp_path: Path) -> None:
    run(tmp_path / "teacher", epochs=1, max_steps=2)
    teacher = str(tmp_path / "teacher" / "last.pt")
    run(tmp_path / "student", epochs=2, max_steps=4, teachers=[teacher])
    with pytest.raises(SystemExit, match="teachers"):
        run(tmp_path / "student", epochs=2, resume=True)  # the teacher forgotten on resume
    run(tmp_path / "student", epochs=2, resume=True, teachers=[teacher])


@pytest.mark.parametrize("flag, value", [("--distill", "1.5"), ("--distill", "-0.1"),
                                         ("--ema-decay", "1.0"), ("--genre-dropout", "1.2")])
def test_out_of_range_training_flags_name_the_flag(flag, value, capsys) -> None:
    from grooverack.cli import build_parser

    args = build_parser().parse_args(["train", flag, value, "--gmd", "/nonexistent.zip"])
    assert args._run(args) == 2
    err = capsys.readouterr().err
    assert flag in err and value in err and "allowed" in err


@pytest.mark.parametrize("item, says", [("enc_pair=3", "enc_pair must divide the 32 steps"),
                                        ("bogus=3", "unknown field bogus"),
                                        ("enc_layers=x", "'enc_layers=x' is not KEY=NUMBER")])
def test_a_bad_model_override_is_named_before_any_work(item, says, capsys) -> None:
    from grooverack.cli import build_parser

    args = build_parser().parse_args(["train", "--model", item, "--gmd", "/nonexistent.zip"])
    assert args._run(args) == 2  # before the data is read (that would name the missing zip)
    err = capsys.readouterr().err
    assert f"--model {item}" in err and says in err and "nonexistent" not in err


def test_a_tempo_model_trains_on_the_loops_tempo_and_exports(tmp_path: Path) -> None:
    """--tempo: the decoder learns from each loop's BPM (dropped to unknown at tempo_dropout); the
    exported decoder takes it as its input "tempo"."""
    summary = train.train(SPLITS, tmp_path / "run", config(1), model_overrides={**TINY, "tempo": True},
                          genres=GENRES, data_hash="synthetic", progress=False, threads=1,
                          max_steps=3)
    ckpt = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["config"]["tempo"] is True and summary["epochs"] == 1
    assert any(k.startswith("decoder.tempo.") for k in ckpt["model"])
    # the tempo term got gradients: it moved away from its initial values
    torch.manual_seed(5)
    from grooverack.training.vae import GrooveVAE, VAEConfig

    init = GrooveVAE(VAEConfig.from_dict(ckpt["config"])).state_dict()
    moved = [k for k in ckpt["raw"] if k.startswith("decoder.tempo.")
             and not torch.equal(ckpt["raw"][k], init[k])]
    assert moved
    model, info = export.load_checkpoint(tmp_path / "run" / "last.pt")
    manifest = export.export_model(model, info, tmp_path / "models", calibration=16,
                                   synthetic=True, verbose=False)
    assert manifest["tempo"] is True
    runner = ModelRunner(tmp_path / "models" / MANIFEST_NAME)
    assert runner.tempo
    mu, _ = runner.encode(SPLITS["validation"].groove[0])
    h, _, _ = runner.decode(mu, 0, 120.0)
    assert h.shape == (STEPS, NUM_VOICES) and np.isfinite(h).all()


def test_augment_drops_the_tempo_at_its_rate() -> None:
    cfg = train.TrainConfig(tempo_dropout=0.3)
    n = 4000
    batch = {"groove": torch.zeros(n, STEPS, 3), "hits": torch.zeros(n, STEPS, NUM_VOICES),
             "velocities": torch.zeros(n, STEPS, NUM_VOICES),
             "offsets": torch.zeros(n, STEPS, NUM_VOICES),
             "style": torch.zeros(n, dtype=torch.long), "bpm": torch.full((n,), 100.0)}
    out = train.augment(batch, cfg, torch.Generator().manual_seed(0), len(GENRES), tempo=True)
    unknown = float((out["tempo"] == 0).float().mean())
    assert 0.27 < unknown < 0.33 and set(out["tempo"].unique().tolist()) == {0.0, 100.0}
    assert train.augment(batch, cfg, torch.Generator().manual_seed(0), len(GENRES))["tempo"] is None


# --- starting from a trained checkpoint (--init), structured pruning, teacher target cache ---
def trained(tmp_path: Path, **overrides) -> Path:
    train.train(SPLITS, tmp_path / "src", config(1), model_overrides={**TINY, **overrides},
                genres=GENRES, data_hash="synthetic", progress=False, threads=1, max_steps=4)
    return tmp_path / "src" / "last.pt"


def fresh(**overrides):
    from grooverack.training.vae import GrooveVAE, VAEConfig

    return GrooveVAE(VAEConfig(n_genres=len(GENRES), **{**TINY, **overrides}))


def test_init_with_the_same_shape_copies_every_weight(tmp_path: Path) -> None:
    from grooverack.training.prune import init_from

    src = trained(tmp_path)
    model = fresh()
    record = init_from(model, src, SPLITS["train"], GENRES)
    assert record["kept_importance"] == {}
    want = weights(src)
    got = model.state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_init_keeps_the_most_important_feed_forward_units(tmp_path: Path) -> None:
    """enc_ff 32 -> 12: each encoder block keeps its 12 most important units (in order); the
    pruned feed-forward output is the original minus exactly the dropped units' contributions."""
    from grooverack.training.prune import init_from, unit_importance
    from torch.nn import functional as F

    src_path = trained(tmp_path)
    src, _ = export.load_checkpoint(src_path)
    loops_ = SPLITS["train"]
    score = unit_importance(src, loops_.groove, np.asarray(loops_.style) + 1, None)
    model = fresh(enc_ff=12)
    record = init_from(model, src_path, loops_, GENRES)
    assert set(record["kept_importance"]) == {"encoder.stack.blocks.0"}
    assert 0.0 < record["kept_importance"]["encoder.stack.blocks.0"] < 1.0
    keep = np.sort(np.argsort(-score["encoder.stack.blocks.0"])[:12])
    a, b = src.encoder.stack.blocks[0], model.encoder.stack.blocks[0]
    assert torch.equal(b.ff1.weight, a.ff1.weight[keep]) and torch.equal(b.ff1.bias, a.ff1.bias[keep])
    assert torch.equal(b.ff2.weight, a.ff2.weight[:, keep]) and torch.equal(b.ff2.bias, a.ff2.bias)
    x = torch.randn(5, STEPS, TINY["enc_d"])
    with torch.no_grad():
        units = F.relu(a.ff1(x))
        dropped = np.setdiff1d(np.arange(32), keep)
        expected = a.ff2(units) - units[..., dropped] @ a.ff2.weight[:, dropped].T
        assert torch.allclose(b.ff2(F.relu(b.ff1(x))), expected, atol=1e-5)
    # everything outside the pruned layers is copied unchanged (the decoder included)
    want = weights(src_path)
    for key, value in model.state_dict().items():
        if ".ff1." not in key and ".ff2.weight" not in key or key.startswith("decoder."):
            assert torch.equal(value, want[key]), key


def test_init_regroups_attention_into_fewer_heads(tmp_path: Path) -> None:
    """enc_heads 2 -> 1: every weight is copied as it is; the block now attends with one head
    over all 16 channels (the two old heads' scores summed, scaled by 1/sqrt(16))."""
    from grooverack.training.prune import init_from
    from grooverack.training.vae import OrtAttention

    src = trained(tmp_path)
    model = fresh(enc_heads=1)
    init_from(model, src, SPLITS["train"], GENRES)
    want = weights(src)
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())
    block = model.encoder.stack.blocks[0].eval()
    assert block.heads == 1 and block.head_d == 16
    x = torch.randn(3, STEPS, 16)
    with torch.no_grad():
        h = block.norm1(x)
        one_head = x + block.proj(OrtAttention.apply(h, block.qkv.weight, block.qkv.bias, 1))
        two_heads = x + block.proj(OrtAttention.apply(h, block.qkv.weight, block.qkv.bias, 2))
        y = block(x)
        assert torch.allclose(y, one_head + block.ff2(torch.relu(block.ff1(block.norm2(one_head)))),
                              atol=1e-5)
        assert not torch.allclose(y, two_heads + block.ff2(torch.relu(block.ff1(
            block.norm2(two_heads)))), atol=1e-3)


@pytest.mark.parametrize("overrides, says", [({"enc_d": 8}, "enc_d 8 != the checkpoint's 16"),
                                             ({"enc_ff": 64}, "enc_ff 64 > the checkpoint's 32"),
                                             ({"dec_layers": 2}, "dec_layers 2 > the checkpoint's 1"),
                                             ({"latent_size": 4}, "latent_size 4 != the checkpoint's 8"),
                                             ({"tempo": True}, "tempo True != the checkpoint's False")])
def test_init_refuses_a_shape_it_cannot_take(tmp_path: Path, overrides, says) -> None:
    from grooverack.training.prune import init_from

    src = trained(tmp_path)
    with pytest.raises(SystemExit, match=says.replace("'", ".")) as caught:
        init_from(fresh(**overrides), src, SPLITS["train"], GENRES)
    assert str(src) in str(caught.value)


def test_a_run_from_init_holds_beta_and_records_its_start(tmp_path: Path) -> None:
    src = trained(tmp_path)
    cfg = config(2)
    cfg.beta_hold = True
    assert {train.beta_at(e / 4, cfg) for e in range(8)} == {cfg.beta_max}
    train.train(SPLITS, tmp_path / "ft", cfg, model_overrides={**TINY, "enc_ff": 16},
                genres=GENRES, data_hash="synthetic", progress=False, threads=1, max_steps=2,
                init=str(src))
    ckpt = torch.load(tmp_path / "ft" / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["init"]["path"] == str(src) and ckpt["config"]["enc_ff"] == 16
    assert ckpt["history"][0]["beta"] == cfg.beta_max
    # a resumed run keeps its own weights and the record of where it started
    train.train(SPLITS, tmp_path / "ft", cfg, model_overrides={**TINY, "enc_ff": 16},
                genres=GENRES, data_hash="synthetic", progress=False, threads=1, resume=True,
                init=str(src))
    again = torch.load(tmp_path / "ft" / "last.pt", map_location="cpu", weights_only=False)
    assert again["epoch"] == 2 and again["init"] == ckpt["init"]


def test_a_missing_init_checkpoint_is_named_before_any_work(capsys) -> None:
    from grooverack.cli import build_parser

    args = build_parser().parse_args(["train", "--init", "/nonexistent/best.pt",
                                      "--gmd", "/nonexistent.zip"])
    assert args._run(args) == 2
    err = capsys.readouterr().err
    assert "--init /nonexistent/best.pt: checkpoint not found" in err and ".zip" not in err


def test_teacher_targets_are_cached_under_what_they_depend_on(tmp_path: Path, monkeypatch) -> None:
    import os

    teacher = trained(tmp_path)
    cache = tmp_path / "cache"
    first = train.teacher_targets([str(teacher)], SPLITS["train"], GENRES, cache)
    files = list(cache.glob("teacher-*.npy"))
    assert len(files) == 1 and not list(cache.glob("*.tmp*"))

    def no_teacher(*_a, **_k):
        raise AssertionError("the cached targets should have been used")

    monkeypatch.setattr(export, "load_checkpoint", no_teacher)
    assert np.array_equal(train.teacher_targets([str(teacher)], SPLITS["train"], GENRES, cache),
                          first)
    monkeypatch.undo()
    # another train set, or a teacher file written again, is another key
    other = loops(32, 9)
    assert train.teacher_cache_key([str(teacher)], other, GENRES) != \
        train.teacher_cache_key([str(teacher)], SPLITS["train"], GENRES)
    st = teacher.stat()
    os.utime(teacher, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    train.teacher_targets([str(teacher)], SPLITS["train"], GENRES, cache)
    assert len(list(cache.glob("teacher-*.npy"))) == 2
    # a damaged cache file is computed again, not trusted
    for f in cache.glob("teacher-*.npy"):
        f.write_bytes(b"not an array")
    again = train.teacher_targets([str(teacher)], SPLITS["train"], GENRES, cache)
    assert np.array_equal(again, first)


def test_unit_importance_is_a_mean_over_every_loop_whatever_the_batches(tmp_path: Path,
                                                                         monkeypatch) -> None:
    from grooverack.training import prune

    src, _ = export.load_checkpoint(trained(tmp_path))
    many = loops(40, 3)
    style = np.asarray(many.style) + 1
    whole = prune.unit_importance(src, many.groove, style, None)
    monkeypatch.setattr(prune, "BATCH", 16)  # 16 + 16 + 8: a short last batch
    parts = prune.unit_importance(src, many.groove, style, None)
    assert set(whole) == set(parts) == {"encoder.stack.blocks.0", "decoder.stack.blocks.0"}
    for block in whole:
        np.testing.assert_allclose(parts[block], whole[block], rtol=1e-5)


def test_init_drops_the_blocks_that_change_the_stream_least(tmp_path: Path) -> None:
    """enc_layers 2 -> 1: the encoder keeps the block with the larger mean update, renumbered 0,
    with its weights unchanged; the decoder is copied as it was."""
    from grooverack.training.prune import block_updates, init_from

    src_path = trained(tmp_path, enc_layers=2)
    src, _ = export.load_checkpoint(src_path)
    loops_ = SPLITS["train"]
    updates = block_updates(src, loops_.groove, np.asarray(loops_.style) + 1, None)
    assert updates["encoder.stack"].shape == (2,) and updates["decoder.stack"].shape == (1,)
    assert np.all(updates["encoder.stack"] > 0)
    best = int(np.argmax(updates["encoder.stack"]))
    model = fresh(enc_layers=1)
    record = init_from(model, src_path, loops_, GENRES)
    assert record["kept_blocks"] == {"encoder.stack": [best]}
    want = weights(src_path)
    got = model.state_dict()
    for key, value in got.items():
        source_key = key.replace("encoder.stack.blocks.0.", f"encoder.stack.blocks.{best}.")
        assert torch.equal(value, want[source_key]), key
    assert not any(k.startswith("encoder.stack.blocks.1.") for k in got)


# --- voice redistribution: a new input learnt alone ---------------------------------------------
def test_redistribution_learnt_alone_leaves_every_other_weight_bit_for_bit(tmp_path: Path) -> None:
    """--init from a model without the input, --train-only decoder.removed.: the new term moves
    (at its own learning rate) and nothing else does, so what the model played stays exactly so;
    a resumed run keeps the two parameter groups."""
    src = trained(tmp_path)
    cfg = config(2)
    cfg.beta_hold, cfg.train_only, cfg.redistribute = True, ("decoder.removed.",), 0.5
    kw = dict(model_overrides={**TINY, "removal_groups": 5}, genres=GENRES, data_hash="synthetic",
              progress=False, threads=1, init=str(src))
    train.train(SPLITS, tmp_path / "rd", cfg, max_steps=4, **kw)
    ckpt = torch.load(tmp_path / "rd" / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["init"]["added"] == ["decoder.removed.weight"]
    before, after = weights(src), ckpt["model"]
    assert set(after) - set(before) == {"decoder.removed.weight"}
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert after["decoder.removed.weight"].abs().sum() > 0
    assert len(ckpt["optimizer"]["param_groups"]) == 2
    train.train(SPLITS, tmp_path / "rd", cfg, resume=True, **kw)
    again = torch.load(tmp_path / "rd" / "last.pt", map_location="cpu", weights_only=False)
    assert again["epoch"] == 2 and all(torch.equal(again["model"][k], before[k]) for k in before)
    cfg.train_only = ("decoder.nothing.",)
    with pytest.raises(SystemExit, match="names no parameter"):
        train.train(SPLITS, tmp_path / "none", cfg, max_steps=1, **kw)


def test_swap_averaged_teacher_targets_pool_both_bar_views(tmp_path: Path) -> None:
    """--teacher-swap-average: each loop's target is the mean of the teacher on the loop and, rolled
    back a bar, on its bar-swapped copy; the swapped-input target is that mean rolled."""
    teacher = trained(tmp_path)
    plain = train.teacher_targets([str(teacher)], SPLITS["train"], GENRES).astype(np.float32)
    pooled = train.teacher_targets([str(teacher)], SPLITS["train"], GENRES,
                                   swap_average=True).astype(np.float32)
    want = 0.5 * (plain[:, 0] + np.roll(plain[:, 1], -16, axis=2))
    np.testing.assert_allclose(pooled[:, 0], want, atol=2e-3)  # float16 targets
    np.testing.assert_allclose(pooled[:, 1], np.roll(pooled[:, 0], 16, axis=2), atol=2e-3)
    assert train.teacher_cache_key([str(teacher)], SPLITS["train"], GENRES, True) != \
        train.teacher_cache_key([str(teacher)], SPLITS["train"], GENRES)
