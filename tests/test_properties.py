"""Property-based tests (hypothesis) for fsp_matrix, fsp_loss and the config parser."""

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fspladder import fsp_loss, fsp_matrix
from fspladder.config import ConfigError, parse_config

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def feature_pair(draw):
    b = draw(st.integers(1, 3))
    m, n = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    h1, w1, h2, w2 = (draw(st.integers(1, 9)) for _ in range(4))
    scale = draw(st.sampled_from([1e-6, 1.0, 1e3]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return torch.randn(b, m, h1, w1, generator=g) * scale, torch.randn(b, n, h2, w2, generator=g) * scale


@SETTINGS
@given(feature_pair())
def test_fsp_matrix_shape_and_finiteness(pair):
    f1, f2 = pair
    g = fsp_matrix(f1, f2)
    assert g.shape == (f1.shape[0], f1.shape[1], f2.shape[1]) and g.dtype == torch.float32
    assert torch.isfinite(g).all()


@SETTINGS
@given(feature_pair())
def test_fsp_matrix_of_a_map_with_itself_is_symmetric_psd(pair):
    f1, _ = pair
    g = fsp_matrix(f1, f1)
    torch.testing.assert_close(g, g.transpose(1, 2), rtol=1e-5, atol=1e-5)
    eig = torch.linalg.eigvalsh(g.double())
    assert (eig >= -1e-6 * max(1.0, float(eig.abs().max()))).all()


@SETTINGS
@given(feature_pair())
def test_swapping_the_maps_transposes_the_matrix(pair):
    f1, f2 = pair
    # Equal up to float32 summation order.
    torch.testing.assert_close(fsp_matrix(f2, f1), fsp_matrix(f1, f2).transpose(1, 2), rtol=1e-5, atol=1e-5)


@SETTINGS
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 4)), min_size=1, max_size=4),
       st.floats(0.0, 10.0), st.sampled_from([1e-4, 1.0, 1e4]))
def test_fsp_loss_is_non_negative_symmetric_and_zero_at_equality(shapes, lam, scale):
    g = torch.Generator().manual_seed(len(shapes))
    s = [torch.randn(2, m, n, generator=g) * scale for m, n in shapes]
    t = [torch.randn(2, m, n, generator=g) * scale for m, n in shapes]
    w = [lam] * len(shapes)
    a, b = fsp_loss(s, t, w), fsp_loss(t, s, w)
    assert a.item() >= 0 and math.isfinite(a.item())
    torch.testing.assert_close(a, b)
    assert fsp_loss(s, s, w).item() == 0.0


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                     st.text(max_size=5), st.lists(st.integers(), max_size=2))
_keys = st.sampled_from(["seed", "device", "stage1", "stage2", "data", "rungs", "teacher", "bench", "bogus",
                         "epochs", "lr", "eval_batch_size", "channels_last"])


@SETTINGS
@given(st.dictionaries(_keys, st.one_of(_scalars, st.dictionaries(_keys, _scalars, max_size=3)), max_size=4))
def test_config_parser_accepts_or_raises_config_error_only(data):
    try:
        cfg = parse_config(data)
    except ConfigError as e:
        assert e.problems and all(isinstance(p, str) and p for p in e.problems)
    else:
        assert cfg.stage2.epochs >= 1 and cfg.rungs
