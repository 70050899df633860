"""The GrooveTransformer VAE in torch (training only; the runtime runs its ONNX export).

Encoder: groove [B, 32, 3] -> Linear + ReLU + sinusoidal positions -> transformer stack (full
attention over the 32 steps) -> flatten -> mu, logvar [B, L].
Decoder: z [B, L] (+ a learned genre embedding, index 0 = "any"; + a learned tempo term from the
BPM the module plays at, 0 = unknown; + a learned term per removed voice group, `removed` [B, G]
0/1 flags in `voices.VOICE_GROUPS` order: the decoder re-voices the groove onto the remaining
instruments) -> Linear to 32 steps -> its own transformer stack -> hit logits, velocities
(sigmoid), offsets (0.5 * tanh), each [B, 32, 9].

The attention blocks are written out with plain ops (Linear, matmul, softmax, LayerNorm) instead of
nn.TransformerEncoderLayer: its fused inference path does not export cleanly, and plain MatMuls are
what onnxruntime's int8 quantizer turns into integer kernels.

`enc_pair` / `dec_pair` = 2 give a stack 16 tokens of two consecutive steps each (less work per
call; tried for latency and not shipped: models/README.md, "Speed and memory"). The graphs' inputs
and outputs stay per step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from grooverack.voices import NUM_VOICES, STEPS, VOICE_GROUPS


@dataclass
class VAEConfig:
    latent_size: int = 128
    enc_d: int = 128
    enc_heads: int = 4
    enc_ff: int = 512
    enc_layers: int = 3
    dec_d: int = 96  # 64 before 2026-11-21 (see models/README.md: why 96)
    dec_heads: int = 4
    dec_ff: int = 384
    dec_layers: int = 2
    squeeze: int = 32  # per-step width at the latent bottleneck (flatten 32 x squeeze <-> z);
    # 16 before 2026-11-21 (every run before the shipped student: models/train-shipped.sh)
    dropout: float = 0.1
    n_genres: int = 0  # 0 = unconditioned; else genres[0] = "any"
    tempo: bool = False  # decoder conditioned on the tempo (BPM, 0 = unknown)
    # voice groups the decoder can be told are removed (voice redistribution): 0 = none, else
    # len(voices.VOICE_GROUPS); their terms start at zero, so a model given them plays as before
    removal_groups: int = 0
    # ... and a learned term per removed group and token added to the decoder's token stream
    # (before its transformer stack), so that removing a group can change each step differently
    removal_tokens: bool = False
    # ... and a learned shift per removed group of each voice's outputs (hit logit, velocity,
    # offset before their squashing), the same at every step
    removal_out: bool = False
    # ... and a learned mix per removed group of the decoder's raw outputs into each other
    # (y + y @ M(removed), M [27, 27]): "play on the high tom where the snare would have played"
    removal_mix: bool = False
    # ... and after each decoder block a small adapter (width removal_adapter, 0 = none) that adds
    # to the stream only while a group is removed: relu(x W1 + removed U) W2 x any(removed)
    removal_adapter: int = 0
    # steps per token: 2 = the stack runs 16 tokens of two 16ths each (less work per call)
    enc_pair: int = 1
    dec_pair: int = 1

    def __post_init__(self) -> None:
        for name in ("enc_pair", "dec_pair"):
            value = getattr(self, name)
            if value < 1 or STEPS % value:
                raise ValueError(f"{name} must divide the {STEPS} steps, got {value}")
        if self.removal_groups not in (0, len(VOICE_GROUPS)):
            raise ValueError(f"removal_groups must be 0 or {len(VOICE_GROUPS)} (the voice groups "
                             f"{', '.join(VOICE_GROUPS)}), got {self.removal_groups}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VAEConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def sinusoidal_positions(steps: int, d: int) -> torch.Tensor:
    pos = torch.arange(steps, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(steps, d)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)
    return table


def self_attention(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, heads: int,
                   drop: nn.Module | None = None) -> torch.Tensor:
    """Multi-head self-attention with its q/k/v projection (full, non-causal, no mask).

    x [B, T, d], weight [3d, d] and bias [3d] (the qkv Linear's: q, then k, then v, each head's
    channels together), scale 1 / sqrt(d / heads); `drop` on the attention weights while training.
    -> [B, T, d], the heads side by side."""
    b, t, d = x.shape
    hd = d // heads
    qkv = F.linear(x, weight, bias).reshape(b, t, 3 * heads, hd).transpose(1, 2)
    q, k, v = qkv.split(heads, dim=1)  # each [B, H, T, hd]: channel s*H + h of (q, k, v)
    att = torch.softmax((q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)), dim=-1)
    if drop is not None:
        att = drop(att)
    return (att @ v).transpose(1, 2).reshape(b, t, d)


class OrtAttention(torch.autograd.Function):
    """`self_attention`, exported as one onnxruntime `com.microsoft::Attention` node instead of
    twelve plain ones (MatMul, Add, Reshape, Transpose, Split, Transpose, MatMul, Mul, Softmax,
    MatMul, Transpose, Reshape). int8 quantization then turns it into one `QAttention` node: the
    projection in integer arithmetic, the attention in float, in one kernel. The node's weight is
    the qkv Linear's transposed ([d, 3d]), its scale onnxruntime's default 1 / sqrt(head width).
    Used only while exporting (no backward): training calls `self_attention` itself."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,  # type: ignore[override]
                heads: int) -> torch.Tensor:
        return self_attention(x, weight, bias, heads)

    @staticmethod
    def symbolic(g, x, weight, bias, heads: int):  # type: ignore[no-untyped-def]
        w = g.op("Transpose", weight, perm_i=[1, 0])  # folded into the initializer on export
        out = g.op("com.microsoft::Attention", x, w, bias, num_heads_i=heads)
        out.setType(x.type())
        return out


class Block(nn.Module):
    """Pre-norm transformer block: x + MHA(LN(x)); x + FF(LN(x)). Full (non-causal) attention."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"model width {d} is not divisible by {heads} heads")
        self.heads = heads
        self.head_d = d // heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, ff)
        self.ff2 = nn.Linear(ff, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        if torch.onnx.is_in_onnx_export():  # one Attention node in the graph (OrtAttention)
            y = OrtAttention.apply(h, self.qkv.weight, self.qkv.bias, self.heads)
        else:
            y = self_attention(h, self.qkv.weight, self.qkv.bias, self.heads, self.drop)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.ff2(self.drop(F.relu(self.ff1(self.norm2(x))))))


class Stack(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, layers: int, dropout: float,
                 tokens: int = STEPS) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(d, heads, ff, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.register_buffer("positions", sinusoidal_positions(tokens, d), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.positions
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class GrooveEncoder(nn.Module):
    """groove [B, 32, 3] -> (mu [B, L], logvar [B, L])."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.pair, self.tokens = cfg.enc_pair, STEPS // cfg.enc_pair
        self.embed = nn.Linear(3 * self.pair, cfg.enc_d)
        self.stack = Stack(cfg.enc_d, cfg.enc_heads, cfg.enc_ff, cfg.enc_layers, cfg.dropout,
                           self.tokens)
        # squeeze each step before flattening: a direct 32*d -> 2L projection would hold most of
        # the model's weights (1 M of them at d 128) for little gain
        self.squeeze = nn.Linear(cfg.enc_d, cfg.squeeze)
        self.to_stats = nn.Linear(self.tokens * cfg.squeeze, 2 * cfg.latent_size)
        self.latent_size = cfg.latent_size

    def forward(self, groove: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pair > 1:  # a token holds `pair` consecutive steps (hit, velocity, offset of each)
            groove = groove.reshape(-1, self.tokens, 3 * self.pair)
        x = self.stack(F.relu(self.embed(groove)))
        stats = self.to_stats(self.squeeze(x).flatten(1))
        mu, logvar = stats[:, : self.latent_size], stats[:, self.latent_size:]
        return mu, logvar


TEMPO_MIN, TEMPO_MAX, TEMPO_REF = 40.0, 300.0, 120.0


def tempo_features(bpm: torch.Tensor) -> torch.Tensor:
    """bpm [B] (0 or less = unknown) -> [B, 2]: (log2 of the clamped tempo over 120 BPM, known).
    An octave of tempo is one unit; an unknown tempo gives (0, 0)."""
    known = (bpm > 0).to(torch.float32)
    octaves = torch.log2(torch.clamp(bpm, TEMPO_MIN, TEMPO_MAX) / TEMPO_REF)
    return torch.stack([octaves * known, known], dim=-1)


class RemovalMix(nn.Module):
    """y [B, T, C] + y @ M, M [C, C] = the removed groups' flags [B, G] times a learned [C * C, G]
    (zero at the start). A module of its own so that its graph nodes are named under
    /removed_mix/ (export keeps them in fp32)."""

    def __init__(self, groups: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.weight = nn.Parameter(torch.zeros(channels * channels, groups))

    def forward(self, y: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
        mix = F.linear(removed, self.weight).reshape(-1, self.channels, self.channels)
        return y + y @ mix


class RemovalAdapter(nn.Module):
    """x + relu(x W1 + removed U) W2 * any(removed): what a removed group changes in the decoder's
    stream after one block; W2 starts at zero and nothing is added while no group is removed."""

    def __init__(self, d: int, width: int, groups: int) -> None:
        super().__init__()
        self.down = nn.Linear(d, width)
        self.flags = nn.Linear(groups, width, bias=False)
        self.up = nn.Linear(width, d, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
        gate = removed.amax(-1, keepdim=True)[:, :, None]  # [B, 1, 1]
        h = F.relu(self.down(x) + self.flags(removed)[:, None, :])
        return x + self.up(h) * gate


class DrumDecoder(nn.Module):
    """z [B, L] (+ genre [B]) (+ tempo [B] BPM) (+ removed [B, G] flags) -> hit_logits,
    velocities, offsets [B, 32, 9]."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.dec_d = cfg.dec_d
        self.genre = nn.Embedding(cfg.n_genres, cfg.latent_size) if cfg.n_genres else None
        self.tempo = (nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, cfg.latent_size))
                      if cfg.tempo else None)
        self.removed = None
        if cfg.removal_groups:
            self.removed = nn.Linear(cfg.removal_groups, cfg.latent_size, bias=False)
            nn.init.zeros_(self.removed.weight)
        self.removed_tokens = None
        if cfg.removal_groups and cfg.removal_tokens:
            self.removed_tokens = nn.Linear(cfg.removal_groups, STEPS // cfg.dec_pair * cfg.dec_d,
                                            bias=False)
            nn.init.zeros_(self.removed_tokens.weight)
        self.removed_out = None
        if cfg.removal_groups and cfg.removal_out:
            self.removed_out = nn.Linear(cfg.removal_groups, 3 * NUM_VOICES, bias=False)
            nn.init.zeros_(self.removed_out.weight)
        self.removed_mix = (RemovalMix(cfg.removal_groups, 3 * NUM_VOICES)
                            if cfg.removal_groups and cfg.removal_mix else None)
        self.removed_adapters = None
        if cfg.removal_groups and cfg.removal_adapter:
            self.removed_adapters = nn.ModuleList(
                RemovalAdapter(cfg.dec_d, cfg.removal_adapter, cfg.removal_groups)
                for _ in range(cfg.dec_layers))
        self.squeeze = cfg.squeeze
        self.tokens = STEPS // cfg.dec_pair
        self.expand = nn.Linear(cfg.latent_size, self.tokens * cfg.squeeze)
        self.unsqueeze = nn.Linear(cfg.squeeze, cfg.dec_d)
        self.stack = Stack(cfg.dec_d, cfg.dec_heads, cfg.dec_ff, cfg.dec_layers, cfg.dropout,
                           self.tokens)
        self.out = nn.Linear(cfg.dec_d, 3 * NUM_VOICES * cfg.dec_pair)

    def forward(self, z: torch.Tensor, genre: torch.Tensor | None = None,
                tempo: torch.Tensor | None = None, removed: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.genre is not None:
            if genre is None:
                genre = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
            z = z + self.genre(genre)
        if self.tempo is not None:
            if tempo is None:
                tempo = torch.zeros(z.shape[0], dtype=torch.float32, device=z.device)
            z = z + self.tempo(tempo_features(tempo))
        if self.removed is not None and removed is not None:  # None = nothing removed
            z = z + self.removed(removed.to(z.dtype))
        x = F.relu(self.expand(z)).reshape(-1, self.tokens, self.squeeze)
        x = self.unsqueeze(x)
        if self.removed_tokens is not None and removed is not None:
            x = x + self.removed_tokens(removed.to(x.dtype)).reshape(-1, self.tokens, self.dec_d)
        if self.removed_adapters is not None and removed is not None:
            stack = self.stack  # Stack.forward, with an adapter after each block
            x = x + stack.positions
            for block, adapter in zip(stack.blocks, self.removed_adapters, strict=True):
                x = adapter(block(x), removed.to(x.dtype))
            y = self.out(stack.norm(x))
        else:
            y = self.out(self.stack(x))
        if self.tokens != STEPS:  # a token's `dec_pair` steps in turn
            y = y.reshape(-1, STEPS, 3 * NUM_VOICES)
        if self.removed_mix is not None and removed is not None:
            y = self.removed_mix(y, removed.to(y.dtype))
        if self.removed_out is not None and removed is not None:
            y = y + self.removed_out(removed.to(y.dtype))[:, None, :]
        hit_logits = y[..., :NUM_VOICES]
        velocities = torch.sigmoid(y[..., NUM_VOICES: 2 * NUM_VOICES])
        offsets = 0.5 * torch.tanh(y[..., 2 * NUM_VOICES:])
        return hit_logits, velocities, offsets


class GrooveVAE(nn.Module):
    def __init__(self, cfg: VAEConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or VAEConfig()
        self.encoder = GrooveEncoder(self.cfg)
        self.decoder = DrumDecoder(self.cfg)

    def forward(self, groove: torch.Tensor, genre: torch.Tensor | None = None,
                sample: bool = True, tempo: torch.Tensor | None = None,
                removed: torch.Tensor | None = None):
        mu, logvar = self.encoder(groove)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        hit_logits, velocities, offsets = self.decoder(z, genre, tempo, removed)
        return hit_logits, velocities, offsets, mu, logvar


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def multiply_adds(cfg: VAEConfig) -> tuple[int, int]:
    """Approximate multiply-adds per item of (encoder, decoder), for the model card."""

    def stack(d: int, ff: int, layers: int, n: int) -> int:
        per = n * (4 * d * d + 2 * d * ff) + 2 * n * n * d
        return layers * per

    ne, nd = STEPS // cfg.enc_pair, STEPS // cfg.dec_pair
    enc = STEPS * 3 * cfg.enc_d + stack(cfg.enc_d, cfg.enc_ff, cfg.enc_layers, ne)
    enc += ne * cfg.enc_d * cfg.squeeze + ne * cfg.squeeze * 2 * cfg.latent_size
    dec = cfg.latent_size * nd * cfg.squeeze + nd * cfg.squeeze * cfg.dec_d
    dec += stack(cfg.dec_d, cfg.dec_ff, cfg.dec_layers, nd)
    dec += STEPS * cfg.dec_d * 3 * NUM_VOICES
    return enc, dec
