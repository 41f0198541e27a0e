"""Growth of the Vision Transformers (:class:`fspladder.models.VisionTransformer`): bert2BERT / HyperCloning.

Function-preserving growth of transformers (Chen et al., "bert2BERT", ACL
2022; Wang et al., "LiGO", ICLR 2023; Samragh et al., "HyperCloning", 2024).
The grown student computes the previous network's logits to float32 rounding
(the ViT has no dropout and no batch statistics, so train and eval mode agree):

* **deeper**: the previous network's blocks are copied into the first blocks of
  each half of the student's blocks (the halves its default FSP pairs span, so
  the tapped block ends stay copies); every new block gets zero weights and
  biases in its attention output projection and its MLP's second layer, so both
  residual branches add zero: an identity.
* **wider residual stream** (``dim`` d -> D = k d, k an integer): coordinate
  ``i`` of the stream is a copy of coordinate ``i mod d``, each copied exactly
  ``k`` times. A LayerNorm's mean and variance over the replicated vector are
  then the original's, so with its scale and shift replicated it outputs the
  replicated original: exact. (With uneven copies the statistics would change;
  hence the integer multiple.) Everything written into the stream is
  replicated (patch embedding, position embeddings, class token, the attention
  and MLP output projections' rows and biases); every linear layer that reads
  the stream (through a LayerNorm: q, k, v, the MLP's first layer, the head)
  splits each input column between the copies in proportions summing to one.
* **heads kept whole**: a new head is a copy of an old one (``heads`` H -> H'
  >= H, head ``j`` copies head ``j mod H``) and may also be wider (``head_dim``
  h -> h' >= h, position ``p`` copies ``p mod h``). ``k`` and ``v`` are
  replicated; ``q``'s copies of a position share its weights in proportions
  summing to one, scaled by ``sqrt(h' / h)``, so a head's logits
  ``q'.k' / sqrt(h')`` equal the old head's ``q.k / sqrt(h)``: the same softmax,
  and each head outputs a copy of its old head's output. The output projection
  splits each old column between all its copies. With ``dim = heads *
  head_dim`` (the built-in models), replicating heads at equal ``head_dim`` is
  the usual choice (``vit_tiny`` -> ``vit_small``: 4 -> 8 heads of 16).
* **wider MLP** (hidden m -> m' >= m, any size): Net2Wider, hidden unit ``i``
  copies ``i mod m`` (GELU is elementwise), the second layer splits its columns.
* **noise** (as the CNNs' growth, :mod:`.net2net`): every split above uses
  proportions ``1 + noise * N(0, 1)`` normalised to sum to one over each
  group of copies instead of equal ones, which keeps the function exactly (only
  the sum of the shares enters) while breaking the copies' symmetry. The
  residual stream's copies themselves cannot carry noise (LayerNorm needs equal
  copies); they diverge through the unequal splits of the layers reading them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn

from ..models.vit import Block, VisionTransformer
from .net2net import Map, Widener, cols, rows
from .registry import GrowthFamily, register_growth
from .sectioned import FIX

__all__ = ["ViTGrowth", "block_map"]


def block_map(prev: VisionTransformer, cur: VisionTransformer) -> dict[int, int]:
    """``cur``'s block index of each of ``prev``'s blocks: each half of ``prev``'s blocks goes to the start of
    the same half of ``cur``'s (:attr:`VisionTransformer.halves`)."""
    (hp, _), (hc, _) = prev.halves, cur.halves
    return {j: (j if j < hp else hc + j - hp) for j in range(prev.depth)}


def _describe(net: VisionTransformer) -> str:
    return f"ViT dim {net.dim} depth {net.depth} heads {net.heads}x{net.head_dim} mlp {net.hidden}"


def _inner_map(prev: VisionTransformer, cur: VisionTransformer) -> torch.Tensor:
    """Attention channel of ``cur`` (head ``j'``, position ``p'``) -> ``prev``'s (head ``j' mod H``, position
    ``p' mod h``): ``(H' h',)``."""
    j = torch.arange(cur.heads).repeat_interleave(cur.head_dim) % prev.heads
    p = torch.arange(cur.head_dim).repeat(cur.heads) % prev.head_dim
    return j * prev.head_dim + p


class _Splits(Widener):
    """Split proportions ``r`` (float64, summing to 1 over each group of copies) for a replication map ``g``."""

    def __init__(self, noise: float, seed: int) -> None:
        super().__init__(noise, torch.Generator().manual_seed(seed))

    def of(self, g: torch.Tensor, c_old: int) -> torch.Tensor:
        return self.split(g, c_old)


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu()


def _copy_linear(dst: nn.Linear, src: nn.Linear, out_g: torch.Tensor | None, in_map: Map | None,
                 out_scale: torch.Tensor | None = None) -> None:
    """``dst`` from ``src``: output rows replicated by ``out_g`` (None: not widened) and scaled per row by
    ``out_scale``; input columns replicated and split by ``in_map`` (None: not widened)."""
    w, b = _cpu(src.weight).double(), _cpu(src.bias).double()  # (o, i), (o,)
    if out_g is not None:
        w, b = rows(w, out_g), rows(b, out_g)
    if out_scale is not None:
        w, b = w * out_scale[:, None], b * out_scale
    if in_map is not None:
        w = cols(w, *in_map)
    dst.weight.copy_(w)
    dst.bias.copy_(b)


def _copy_norm(dst: nn.LayerNorm, src: nn.LayerNorm, g: torch.Tensor) -> None:
    dst.weight.copy_(rows(_cpu(src.weight), g))
    dst.bias.copy_(rows(_cpu(src.bias), g))


@register_growth
class ViTGrowth(GrowthFamily):
    """The Vision Transformers (``vit``, ``vit_micro``, ``vit_tiny``, ``vit_small``): deeper by zero-output blocks,
    wider by replicating the residual stream (integer multiples), heads and MLP units."""

    name = "vit"
    models = (VisionTransformer,)

    def problem(self, prev: VisionTransformer, cur: VisionTransformer) -> str | None:  # type: ignore[override]
        p, c = prev, cur
        if c.depth < p.depth:
            return f"the student has fewer blocks than the network before it ({c.depth} < {p.depth}); {FIX}"
        if c.dim % p.dim:
            return (f"the student's dim {c.dim} is not a multiple of the previous network's {p.dim}: growth "
                    f"replicates every coordinate of the residual stream equally often so that LayerNorm stays "
                    f"exact; pick dim {2 * p.dim}, {3 * p.dim}, ... or {FIX}")
        if c.heads < p.heads or c.head_dim < p.head_dim:
            return (f"the student has fewer or narrower attention heads ({c.heads} of {c.head_dim}) than the "
                    f"network before it ({p.heads} of {p.head_dim}): heads are copied whole; {FIX}")
        if c.hidden < p.hidden:
            return f"the student's MLP is narrower ({c.hidden} < {p.hidden} units); {FIX}"
        same = [(what, a, b) for what, a, b in (
            ("patch size", p.patch, c.patch), ("pool", p.pool, c.pool), ("position grid", p.grid, c.grid),
            ("image channels", p.embed.proj.in_channels, c.embed.proj.in_channels),
            ("classes", p.head.out_features, c.head.out_features),
            ("LayerNorm eps", p.norm.eps, c.norm.eps)) if a != b]
        if same:
            what, a, b = same[0]
            hint = " (img_size: both must be made for the same images)" if what == "position grid" else ""
            return f"the networks differ in {what}: {a} vs {b}{hint}; growth copies it unchanged; {FIX}"
        return None

    def fresh_blocks_problem(self, prev: VisionTransformer, cur: VisionTransformer) -> str | None:  # type: ignore[override]
        if prev.dim != cur.dim:
            return f"that needs equal widths, got dim {prev.dim} -> {cur.dim}"
        if prev.depth == cur.depth:
            return f"that needs new blocks, but both have {cur.depth} blocks"
        return None

    def copies(self, prev: VisionTransformer, cur: VisionTransformer) -> list[nn.Module]:  # type: ignore[override]
        return [cur.embed, cur.norm, cur.head] + [cur.blocks[i] for i in block_map(prev, cur).values()]

    def grow(self, prev: VisionTransformer, cur: VisionTransformer, *, identity: bool, noise: float,  # type: ignore[override]
             seed: int) -> dict[str, object]:
        split = _Splits(noise, seed)
        g_s = torch.arange(cur.dim) % prev.dim  # stream: (D,) -> old coordinate, each copied D / d times

        def reads() -> Map:  # a layer reading the stream: its own split of each coordinate's copies
            return g_s, split.of(g_s, prev.dim)

        # Embeddings: everything written into the stream is replicated.
        e_p, e_c = prev.embed, cur.embed
        e_c.proj.weight.copy_(rows(_cpu(e_p.proj.weight), g_s))  # (D, C, p, p)
        e_c.proj.bias.copy_(rows(_cpu(e_p.proj.bias), g_s))
        e_c.pos_embed.copy_(_cpu(e_p.pos_embed)[:, g_s])  # (1, D, gh, gw)
        if e_p.cls_token is not None and e_c.cls_token is not None:
            e_c.cls_token.copy_(_cpu(e_p.cls_token)[..., g_s])  # (1, 1, D)
        mapping = block_map(prev, cur)
        for j, i in mapping.items():
            self._block(prev.blocks[j], cur.blocks[i], prev, cur, g_s, reads, split)
        if identity:
            for i in set(range(cur.depth)) - set(mapping.values()):
                _zero_branches(cur.blocks[i])
        _copy_norm(cur.norm, prev.norm, g_s)
        _copy_linear(cur.head, prev.head, None, reads())
        return {"deeper": cur.depth > prev.depth, "wider": cur.dim > prev.dim, "from": _describe(prev),
                "to": _describe(cur), "new_blocks": "identity" if identity else "fresh", "noise": noise,
                "heads": f"{prev.heads}x{prev.head_dim} -> {cur.heads}x{cur.head_dim} (copied whole)"}

    @staticmethod
    def _block(src: Block, dst: Block, prev: VisionTransformer, cur: VisionTransformer, g_s: torch.Tensor,
               reads: Callable[[], Map], split: _Splits) -> None:
        _copy_norm(dst.norm1, src.norm1, g_s)
        _copy_norm(dst.norm2, src.norm2, g_s)
        a_s, a_d = src.attn, dst.attn
        g_a = _inner_map(prev, cur)  # (H' h',) -> old attention channel
        # q: each new head splits an old position between its copies within the head, times sqrt(h'/h)
        head_of = torch.arange(cur.heads).repeat_interleave(cur.head_dim)  # (H' h',) new head of each channel
        r_q = split.of(head_of * prev.head_dim + g_a % prev.head_dim, cur.heads * prev.head_dim)
        q_scale = r_q * math.sqrt(cur.head_dim / prev.head_dim)
        _copy_linear(a_d.q, a_s.q, g_a, reads(), q_scale)
        _copy_linear(a_d.k, a_s.k, g_a, reads())
        _copy_linear(a_d.v, a_s.v, g_a, reads())
        _copy_linear(a_d.proj, a_s.proj, g_s, (g_a, split.of(g_a, prev.heads * prev.head_dim)))
        g_h = torch.arange(cur.hidden) % prev.hidden
        _copy_linear(dst.mlp.fc1, src.mlp.fc1, g_h, reads())
        _copy_linear(dst.mlp.fc2, src.mlp.fc2, g_s, (g_h, split.of(g_h, prev.hidden)))


def _zero_branches(block: Block) -> None:
    """Both residual branches of ``block`` add zero: the block is an identity."""
    for lin in (block.attn.proj, block.mlp.fc2):
        lin.weight.zero_()
        lin.bias.zero_()
