"""Property-based tests (hypothesis) for fsp_matrix, fsp_loss and the config parser.

Float tolerances follow float32 rounding at the values' magnitude: a dot product of ``K`` terms
summed in another order can differ by up to about ``K * eps * sum_k |a_k * b_k|`` (the standard
bound for recursive summation), so every comparison is scaled by that bound, never by a fixed rtol.
The Hypothesis profile (examples, derandomisation) is pinned in tests/conftest.py.
"""

import math

import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from fspladder import fsp_loss, fsp_matrix
from fspladder.config import ConfigError, parse_config

EPS32 = torch.finfo(torch.float32).eps


@st.composite
def feature_pair(draw):
    b = draw(st.integers(1, 3))
    m, n = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    h1, w1, h2, w2 = (draw(st.integers(1, 9)) for _ in range(4))
    scale = draw(st.sampled_from([1e-6, 1.0, 1e3]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return torch.randn(b, m, h1, w1, generator=g) * scale, torch.randn(b, n, h2, w2, generator=g) * scale


def rounding_bound(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """Elementwise bound ``(B, m, n)`` on the float32 rounding error of ``fsp_matrix(f1, f2)``.

    ``K * eps * (|F1| |F2|^T) / (h*w)`` with ``K = h*w`` terms per entry, from float64 absolute values
    of the pooled maps (pooling itself is exact: it selects values).
    """
    h, w = min(f1.shape[2], f2.shape[2]), min(f1.shape[3], f2.shape[3])
    a = F.adaptive_max_pool2d(f1, (h, w)) if f1.shape[2:] != (h, w) else f1
    b = F.adaptive_max_pool2d(f2, (h, w)) if f2.shape[2:] != (h, w) else f2
    a, b = a.double().abs().flatten(2), b.double().abs().flatten(2)  # (B, m, K), (B, n, K)
    k = h * w
    # + one rounding for the division and a margin of 2 for the two orders being compared.
    return 2 * (k + 1) * EPS32 * torch.bmm(a, b.transpose(1, 2)) / k + torch.finfo(torch.float32).tiny


@given(feature_pair())
def test_fsp_matrix_shape_and_finiteness(pair):
    f1, f2 = pair
    g = fsp_matrix(f1, f2)
    assert g.shape == (f1.shape[0], f1.shape[1], f2.shape[1]) and g.dtype == torch.float32
    assert torch.isfinite(g).all()


@given(feature_pair())
def test_fsp_matrix_agrees_with_float64_within_the_rounding_bound(pair):
    f1, f2 = pair
    err = (fsp_matrix(f1, f2).double() - fsp_matrix(f1.double(), f2.double())).abs()
    assert (err <= rounding_bound(f1, f2)).all(), float((err / rounding_bound(f1, f2)).max())


@given(feature_pair())
def test_fsp_matrix_of_a_map_with_itself_is_symmetric_psd(pair):
    f1, _ = pair
    g = fsp_matrix(f1, f1).double()
    bound = rounding_bound(f1, f1)
    assert ((g - g.transpose(1, 2)).abs() <= bound).all()
    # The float32 matrix is the exact (PSD) Gram matrix plus an error E with |E| <= bound elementwise,
    # so its eigenvalues are >= -||E||_2 >= -||bound||_F (Weyl's inequality).
    eig = torch.linalg.eigvalsh((g + g.transpose(1, 2)) / 2)  # (B, m)
    floor = -torch.linalg.matrix_norm(bound)  # (B,)
    assert (eig >= floor[:, None]).all(), (eig.min().item(), floor.min().item())


@given(feature_pair())
def test_swapping_the_maps_transposes_the_matrix(pair):
    f1, f2 = pair
    # Equal up to float32 summation order, which bmm may choose differently for the two shapes.
    diff = (fsp_matrix(f2, f1).double() - fsp_matrix(f1, f2).double().transpose(1, 2)).abs()
    assert (diff <= rounding_bound(f2, f1)).all(), float((diff / rounding_bound(f2, f1)).max())


@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 4)), min_size=1, max_size=4),
       st.floats(0.0, 10.0), st.sampled_from([1e-4, 1.0, 1e4]))
def test_fsp_loss_is_non_negative_symmetric_and_zero_at_equality(shapes, lam, scale):
    g = torch.Generator().manual_seed(len(shapes))
    s = [torch.randn(2, m, n, generator=g) * scale for m, n in shapes]
    t = [torch.randn(2, m, n, generator=g) * scale for m, n in shapes]
    w = [lam] * len(shapes)
    a, b = fsp_loss(s, t, w), fsp_loss(t, s, w)
    assert a.item() >= 0 and math.isfinite(a.item())
    assert a.item() == b.item()  # (s - t)^2 == (t - s)^2 exactly: negation does not round
    assert fsp_loss(s, s, w).item() == 0.0


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                     st.text(max_size=5), st.lists(st.integers(), max_size=2))
_keys = st.sampled_from(["seed", "device", "stage1", "stage2", "data", "rungs", "teacher", "bench", "bogus",
                         "epochs", "lr", "eval_batch_size", "channels_last"])


@given(st.dictionaries(_keys, st.one_of(_scalars, st.dictionaries(_keys, _scalars, max_size=3)), max_size=4))
def test_config_parser_accepts_or_raises_config_error_only(data):
    try:
        cfg = parse_config(data)
    except ConfigError as e:
        assert e.problems and all(isinstance(p, str) and p for p in e.problems)
    else:
        assert cfg.stage2.epochs >= 1 and cfg.rungs
