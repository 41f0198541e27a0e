"""A small Vision Transformer (Dosovitskiy et al., ICLR 2021) for the images a CPU trains on.

Patch embedding (a convolution with stride = patch size), learned position
embeddings, an optional class token, ``depth`` pre-norm blocks
(``x + attn(LN(x))``, then ``x + mlp(LN(x))`` with a GELU MLP), a final
LayerNorm, the class token or the mean of the tokens, and a linear head.
Plain PyTorch (``F.scaled_dot_product_attention``), no timm.

Taps give token sequences ``(B, T, d)``: ``embed`` (the tokens that enter the
first block, class token included) and every ``blocks.i``. Their FSP matrices
are the patent's eq. 1 with the token index in place of the spatial position
(:func:`fspladder.flow.fsp_matrix`). The default FSP pairs split the blocks in
two halves, the first ``(depth + 1) // 2`` blocks and the rest, like the
ResNets' sections: ``(embed, end of half 1)`` and ``(end of half 1, end of half
2)``, both ``d x d``. Every tap has the same token count (the class token is
added inside ``embed``), so the two taps of a pair always match.

The position embeddings are made for an ``img_size`` grid: fspladder passes the
data's image size (``img_size``) when it builds the model; on another size they
are resized bilinearly to the input's patch grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import FeatureInfo, register_model

__all__ = ["VisionTransformer", "TokenEmbed", "Attention", "Mlp", "Block", "vit", "vit_micro", "vit_tiny", "vit_small"]


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    h, w = (int(s) for s in v)
    return h, w


class TokenEmbed(nn.Module):
    """Image -> tokens: patch embedding, position embedding, class token. ``(B, C, H, W) -> (B, T, d)``,
    ``T = (H // patch) * (W // patch) (+ 1 with a class token)``."""

    def __init__(self, in_chans: int, dim: int, patch: int, grid: tuple[int, int], cls_token: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, *grid))  # (1, d, gh, gw): resizable to another grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None  # (1, 1, d)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (B, d, h, w)
        pos = self.pos_embed
        if pos.shape[2:] != x.shape[2:]:
            pos = F.interpolate(pos, size=x.shape[2:], mode="bilinear", align_corners=False)
        x = (x + pos).flatten(2).transpose(1, 2)  # (B, N, d)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + N, d)
        return x


class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v projections; ``heads * head_dim`` is the
    attention width (``dim`` in the built-in models). Logits are scaled by ``1 / sqrt(head_dim)``
    (``scaled_dot_product_attention``'s default); growth that widens heads keeps the function by scaling ``q``."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.q, self.k, self.v = nn.Linear(dim, inner), nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.proj = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, heads, T, head_dim)

        o = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        return self.proj(o.transpose(1, 2).reshape(b, t, -1))  # (B, T, d)


class Mlp(nn.Module):
    """``fc2(gelu(fc1(x)))``: ``(B, T, d) -> (B, T, hidden) -> (B, T, d)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``+ mlp(norm2(.))``; ``(B, T, d) -> (B, T, d)``."""

    def __init__(self, dim: int, heads: int, head_dim: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads, head_dim)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """A ViT for small images.

    Args:
        dim: token width ``d`` (the residual stream).
        depth: number of blocks (>= 1).
        heads: attention heads; ``dim`` must be divisible by it (``head_dim = dim // heads``).
        mlp_ratio: MLP hidden width as a multiple of ``dim`` (``hidden = round(dim * mlp_ratio)``).
        patch: patch size (the patch embedding's kernel and stride).
        pool: ``"cls"`` (a class token, read after the final norm) or ``"mean"`` (mean of the tokens).
        img_size: the image size the position embeddings are made for (an int or ``(H, W)``).
        in_chans: input image channels.
        num_classes: classifier outputs.
    """

    def __init__(self, dim: int = 64, depth: int = 4, heads: int = 4, mlp_ratio: float = 2.0, patch: int = 4,
                 pool: str = "cls", img_size: int | Sequence[int] = 32, in_chans: int = 3,
                 num_classes: int = 10) -> None:
        super().__init__()
        h, w = _pair(img_size)
        if min(dim, depth, heads, patch, in_chans, num_classes) < 1:
            raise ValueError(f"dim, depth, heads, patch, in_chans and num_classes must be >= 1, got "
                             f"{dim}, {depth}, {heads}, {patch}, {in_chans}, {num_classes}")
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}; "
                             "pick heads dividing dim (head_dim = dim // heads)")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        if min(h, w) < patch:
            raise ValueError(f"img_size {(h, w)} is smaller than the patch size {patch}")
        if h % patch or w % patch:  # the patch embedding's stride would drop the last rows or columns unseen
            raise ValueError(f"images of {h}x{w} are not a whole number of {patch}x{patch} patches: the last "
                             f"{h % patch} row(s) and {w % patch} column(s) would be dropped; resize the images to a "
                             f"multiple of {patch} (data.image_size for folder data) or choose a patch that divides "
                             "them")
        hidden = round(dim * mlp_ratio)
        if hidden < 1:
            raise ValueError(f"mlp_ratio {mlp_ratio} gives an MLP of {hidden} units; use mlp_ratio > 0")
        self.dim, self.depth, self.heads, self.head_dim = dim, depth, heads, dim // heads
        self.hidden, self.patch, self.pool, self.grid = hidden, patch, pool, (h // patch, w // patch)
        self.embed = TokenEmbed(in_chans, dim, patch, self.grid, pool == "cls")
        self.blocks = nn.Sequential(*(Block(dim, heads, dim // heads, hidden) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        half = self.halves[0]
        ends = ["embed"] + ([f"blocks.{half - 1}"] if depth > 1 else []) + [f"blocks.{depth - 1}"]
        # num_chs is the token width d; reduction is the patch size (one token per patch x patch pixels)
        self.feature_info = [FeatureInfo(m, dim, patch) for m in ends]
        self.default_fsp_pairs = list(zip(ends, ends[1:]))
        self._init_weights()

    @property
    def halves(self) -> tuple[int, int]:
        """Blocks in the first and the second half (the default FSP pairs' spans; growth keeps them)."""
        first = (self.depth + 1) // 2
        return first, self.depth - first

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.blocks(self.embed(x)))  # (B, T, d)
        x = x[:, 0] if self.pool == "cls" else x.mean(dim=1)  # (B, d)
        return self.head(x)


@register_model
def vit(dim: int = 64, depth: int = 4, heads: int = 4, mlp_ratio: float = 2.0, patch: int = 4, pool: str = "cls",
        img_size: int | Sequence[int] = 32, in_chans: int = 3, num_classes: int = 10) -> VisionTransformer:
    """Vision Transformer of any size (``dim``, ``depth``, ``heads``, ``mlp_ratio``, ``patch``, ``pool``)."""
    return VisionTransformer(dim, depth, heads, mlp_ratio, patch, pool, img_size, in_chans, num_classes)


@register_model
def vit_micro(pool: str = "cls", img_size: int | Sequence[int] = 32, in_chans: int = 3,
              num_classes: int = 10) -> VisionTransformer:
    """The CPU benches' ViT teacher: dim 32, 2 blocks, 2 heads of 16, MLP 64, patch 4 (about 19k parameters
    on 28x28 grey images); ``vit_tiny`` is it 2x wide and 2x deep, and grows from it function-preserving."""
    return VisionTransformer(32, 2, 2, 2.0, 4, pool, img_size, in_chans, num_classes)


@register_model
def vit_tiny(pool: str = "cls", img_size: int | Sequence[int] = 32, in_chans: int = 3,
             num_classes: int = 10) -> VisionTransformer:
    """Teacher-sized ViT: dim 64, 4 blocks, 4 heads of 16, MLP 128, patch 4 (about 0.14M parameters)."""
    return VisionTransformer(64, 4, 4, 2.0, 4, pool, img_size, in_chans, num_classes)


@register_model
def vit_small(pool: str = "cls", img_size: int | Sequence[int] = 32, in_chans: int = 3,
              num_classes: int = 10) -> VisionTransformer:
    """vit_tiny 2x wide and 1.5x deep: dim 128, 6 blocks, 8 heads of 16, MLP 256, patch 4 (about 5.8x
    vit_tiny's parameters); function-preserving growth from vit_tiny applies."""
    return VisionTransformer(128, 6, 8, 2.0, 4, pool, img_size, in_chans, num_classes)
