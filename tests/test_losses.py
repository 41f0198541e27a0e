import pytest
import torch

from fspladder import fsp_loss


def test_fsp_loss_matches_hand_computation_with_unequal_weights():
    torch.manual_seed(0)
    s = [torch.randn(3, 2, 4), torch.randn(3, 5, 5)]
    t = [torch.randn(3, 2, 4), torch.randn(3, 5, 5)]
    w = [0.25, 2.0]
    expected = 0.0
    for b in range(3):  # (1/N) sum_x sum_i lambda_i ||G_i^T - G_i^S||_F^2
        for i in range(2):
            expected += w[i] * float(((t[i][b] - s[i][b]) ** 2).sum())
    expected /= 3
    assert fsp_loss(s, t, w).item() == pytest.approx(expected, rel=1e-6)


def test_fsp_loss_default_weights_are_one_and_zero_at_equality():
    s = [torch.ones(2, 3, 3)]
    t = [torch.zeros(2, 3, 3)]
    assert fsp_loss(s, t).item() == pytest.approx(9.0)
    assert fsp_loss(s, [x.clone() for x in s]).item() == 0.0


def test_fsp_loss_gradient_flows_only_to_student():
    s = [torch.randn(2, 3, 3, requires_grad=True)]
    t = [torch.randn(2, 3, 3)]
    fsp_loss(s, t).backward()
    torch.testing.assert_close(s[0].grad, 2 * (s[0] - t[0]).detach() / 2)


def test_fsp_loss_names_the_mismatched_pair():
    s = [torch.zeros(2, 3, 3), torch.zeros(2, 4, 8)]
    t = [torch.zeros(2, 3, 3), torch.zeros(2, 4, 4)]
    with pytest.raises(ValueError, match=r"FSP pair 1 .*\(2, 4, 8\).*\(2, 4, 4\)"):
        fsp_loss(s, t)


def test_fsp_loss_rejects_count_and_weight_mismatch():
    with pytest.raises(ValueError, match="same number of FSP pairs"):
        fsp_loss([torch.zeros(1, 2, 2)], [])
    with pytest.raises(ValueError, match="one weight per pair"):
        fsp_loss([torch.zeros(1, 2, 2)], [torch.zeros(1, 2, 2)], [1.0, 2.0])
