"""The latent diffusion transformer (DiT, Peebles & Xie 2023) of Class-N-Diff (METHOD.md §2).

Patchified C×H×W latents -> transformer -> ε and the learned-variance interpolation (2C output channels,
the DiT/IDDPM recipe). Two conditioning modes:

- `cross_attn` (the Class-N-Diff paper, §III-B): the timestep embedding and one embedding per condition
  are separate condition tokens; each block does self-attention on the image tokens, cross-attention from
  the image tokens to the condition tokens, then the MLP.
- `adaln` (the DiT paper): adaLN-Zero modulation by c = t_emb + Σ condition embeddings.

Conditions come from `training.conditions`: `label` always, `skin_tone` and `sex` optional. Each has a null
token (index K) used for unknown values and for classifier-free-guidance dropout, drawn independently per
condition and per sample with probability `class_dropout_prob` (0.1, METHOD.md §2) in training mode.
A condition missing from the mapping given to `forward` is null (unconditional on that attribute).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from training.conditions import CONDITIONS, null_index

CONDITIONING_MODES = ("cross_attn", "adaln")


@dataclass(frozen=True)
class DiTConfig:
    in_channels: int = 4
    input_size: tuple[int, int] = (32, 32)  # latent (H, W)
    patch_size: int = 4
    hidden_size: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    learn_sigma: bool = True
    conditioning: str = "cross_attn"
    conditions: tuple[str, ...] = ("label",)
    class_dropout_prob: float = 0.1
    extra: dict = field(default_factory=dict)  # free-form provenance (registry name, ...)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "conditions", tuple(self.conditions))
        if self.conditioning not in CONDITIONING_MODES:
            raise ValueError(f"DiTConfig.conditioning: {self.conditioning!r}; expected one of {CONDITIONING_MODES}")
        unknown = [c for c in self.conditions if c not in CONDITIONS]
        if "label" not in self.conditions or unknown:
            raise ValueError(f"DiTConfig.conditions: {self.conditions}; expected 'label' plus names from "
                             f"{sorted(CONDITIONS)}")
        h, w = self.input_size
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"DiTConfig: latent {h}x{w} is not divisible by patch size {self.patch_size}")
        if self.hidden_size % self.num_heads or self.hidden_size % 4:
            raise ValueError(f"DiTConfig: hidden {self.hidden_size} must divide by heads {self.num_heads} and 4")

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    def to_dict(self) -> dict:
        return asdict(self) | {"input_size": list(self.input_size), "conditions": list(self.conditions)}

    @classmethod
    def from_dict(cls, values: Mapping) -> DiTConfig:
        return cls(**dict(values))


def sincos_pos_embed(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Fixed 2D sin-cos position embedding (MAE/DiT), (grid_h*grid_w, dim); half the channels encode each axis."""
    def axis(positions: torch.Tensor, d: int) -> torch.Tensor:
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        out = positions.reshape(-1, 1).double() * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    ys, xs = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    # DiT's grid puts w first: the first half of the channels encodes the column index
    return torch.cat([axis(xs, dim // 2), axis(ys, dim // 2)], dim=1).float()


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, frequency_size: int = 256) -> None:
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.frequency_size))


class Attention(nn.Module):
    """Multi-head attention through `F.scaled_dot_product_attention`; `context` None means self-attention."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        context = x if context is None else context
        q = self.q(x).reshape(b, n, self.heads, d // self.heads).transpose(1, 2)
        k, v = self.kv(context).reshape(b, context.shape[1], 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


def mlp(hidden: int, ratio: float) -> nn.Sequential:
    inner = int(hidden * ratio)
    return nn.Sequential(nn.Linear(hidden, inner), nn.GELU(approximate="tanh"), nn.Linear(inner, hidden))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class AdaLNBlock(nn.Module):
    """DiT block with adaLN-Zero conditioning on the pooled condition vector c."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = mlp(hidden, mlp_ratio)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=1)
        x = x + gate1.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift2, scale2))


class CrossAttnBlock(nn.Module):
    """Class-N-Diff block (paper §III-B): self-attention, cross-attention to the condition tokens, MLP."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, eps=1e-6)
        self.attn = Attention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, eps=1e-6)
        self.norm_context = nn.LayerNorm(hidden, eps=1e-6)
        self.cross = Attention(hidden, heads)
        self.norm3 = nn.LayerNorm(hidden, eps=1e-6)
        self.mlp = mlp(hidden, mlp_ratio)

    def forward(self, x: torch.Tensor, c: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.cross(self.norm2(x), self.norm_context(tokens))
        return x + self.mlp(self.norm3(x))


class DiT(nn.Module):
    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        hidden, p = config.hidden_size, config.patch_size
        h, w = config.input_size
        self.grid = (h // p, w // p)
        self.patch_embed = nn.Conv2d(config.in_channels, hidden, kernel_size=p, stride=p)
        self.register_buffer("pos_embed", sincos_pos_embed(hidden, *self.grid)[None], persistent=False)
        self.t_embedder = TimestepEmbedder(hidden)
        # One table per condition, K values + the null token at index K (training.conditions)
        self.condition_embedders = nn.ModuleDict(
            {name: nn.Embedding(CONDITIONS[name] + 1, hidden) for name in config.conditions})
        block = CrossAttnBlock if config.conditioning == "cross_attn" else AdaLNBlock
        self.blocks = nn.ModuleList([block(hidden, config.num_heads, config.mlp_ratio) for _ in range(config.depth)])
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.final_modulation = (nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
                                 if config.conditioning == "adaln" else None)
        self.final_linear = nn.Linear(hidden, p * p * config.out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        """DiT's initialisation: xavier linears, N(0, 0.02) embeddings, zero adaLN and output layers."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        weight = self.patch_embed.weight.data
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        for table in self.condition_embedders.values():
            nn.init.normal_(table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for blk in self.blocks:
            if isinstance(blk, AdaLNBlock):
                nn.init.zeros_(blk.modulation[-1].weight)
                nn.init.zeros_(blk.modulation[-1].bias)
        if self.final_modulation is not None:
            nn.init.zeros_(self.final_modulation[-1].weight)
            nn.init.zeros_(self.final_modulation[-1].bias)
        nn.init.zeros_(self.final_linear.weight)
        nn.init.zeros_(self.final_linear.bias)

    def drop_conditions(self, conditions: Mapping[str, torch.Tensor], batch: int, device: torch.device,
                        generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Condition indices with CFG dropout (training mode only): each condition independently, per sample."""
        out = {}
        for name in self.config.conditions:
            null = torch.full((batch,), null_index(name), dtype=torch.long, device=device)
            values = conditions.get(name)
            values = null if values is None else values.to(device=device, dtype=torch.long)
            if self.training and self.config.class_dropout_prob > 0:
                u = torch.rand(batch, generator=generator, device=generator.device if generator else device)
                values = torch.where(u.to(device) < self.config.class_dropout_prob, null, values)
            out[name] = values
        return out

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        b, p, c = x.shape[0], self.config.patch_size, self.config.out_channels
        gh, gw = self.grid
        x = x.reshape(b, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, c, gh * p, gw * p)

    def forward(self, x: torch.Tensor, t: torch.Tensor, conditions: Mapping[str, torch.Tensor],
                generator: torch.Generator | None = None) -> torch.Tensor:
        """x (B, C, H, W) noised latents, t (B,) integer timesteps, conditions name -> (B,) indices.

        Returns (B, 2C, H, W): ε̂ in the first C channels, the variance interpolation v in [-1, 1] (IDDPM) after.
        """
        b = x.shape[0]
        tokens_x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed.to(x.dtype)
        t_emb = self.t_embedder(t)
        indices = self.drop_conditions(conditions, b, x.device, generator)
        embeddings = [self.condition_embedders[name](indices[name]) for name in self.config.conditions]
        c = t_emb + torch.stack(embeddings).sum(0)  # adaLN's pooled condition
        tokens_c = torch.stack([t_emb, *embeddings], dim=1)  # cross_attn's condition tokens (B, 1 + n, D)
        for blk in self.blocks:
            tokens_x = blk(tokens_x, c, tokens_c)
        tokens_x = self.norm_final(tokens_x)
        if self.final_modulation is not None:
            shift, scale = self.final_modulation(c).chunk(2, dim=1)
            tokens_x = modulate(tokens_x, shift, scale)
        return self.unpatchify(self.final_linear(tokens_x))


# Name -> (depth, hidden, heads), the DiT paper's Table 1; "T" is this project's CPU demo size.
DIT_SIZES: dict[str, tuple[int, int, int]] = {
    "T": (4, 128, 4),
    "S": (12, 384, 6),
    "B": (12, 768, 12),
    "L": (24, 1024, 16),  # Class-N-Diff: 24 blocks, patch 4 (paper §III-B); hidden/heads of DiT-L
    "XL": (28, 1152, 16),
}
DIT_MODELS: tuple[str, ...] = tuple(f"DiT-{size}/{p}" for size in DIT_SIZES for p in (2, 4, 8))


def dit_config(name: str, **overrides: object) -> DiTConfig:
    """A registry name ("DiT-L/4", "DiT-T/2", ...) -> its config; `overrides` set the remaining fields."""
    try:
        size, patch = name.removeprefix("DiT-").split("/")
        depth, hidden, heads = DIT_SIZES[size]
        if int(patch) not in (2, 4, 8):
            raise KeyError(patch)
    except (KeyError, ValueError):
        raise KeyError(f"unknown DiT {name!r}; expected one of {DIT_MODELS}") from None
    extra = dict(overrides.pop("extra", {}) or {}) | {"registry_name": name}
    return DiTConfig(patch_size=int(patch), depth=depth, hidden_size=hidden, num_heads=heads, extra=extra,
                     **overrides)


def create_dit(name: str, **overrides: object) -> DiT:
    return DiT(dit_config(name, **overrides))


def save_dit(model: DiT, weights_path: Path, config_path: Path | None = None) -> None:
    """safetensors weights with the config in their metadata (and as JSON beside them when asked)."""
    config_json = json.dumps(model.config.to_dict(), sort_keys=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    Path(weights_path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(weights_path), metadata={"dit_config": config_json})
    if config_path is not None:
        Path(config_path).write_text(json.dumps(model.config.to_dict(), indent=2, sort_keys=True) + "\n")


def load_dit(weights_path: Path, config_path: Path | None = None) -> DiT:
    """The DiT saved by `save_dit`; the config comes from `config_path` or the safetensors metadata."""
    from safetensors import safe_open

    if config_path is not None:
        config = json.loads(Path(config_path).read_text())
    else:
        with safe_open(str(weights_path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if "dit_config" not in metadata:
            raise ValueError(f"{weights_path}: no 'dit_config' in the safetensors metadata; pass config_path")
        config = json.loads(metadata["dit_config"])
    model = DiT(DiTConfig.from_dict(config))
    model.load_state_dict(load_file(str(weights_path)))
    return model
