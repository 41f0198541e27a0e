"""Vision Transformers (issue 24): the model, its token taps, function-preserving growth, and both recipes
on a ViT pair."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import bench_args

from fspladder import FlowRecorder, create_model
from fspladder.cli import main
from fspladder.growth import fresh_blocks_problem, grow, grown_copies, growth_problem
from fspladder.models import VisionTransformer, create_for_data


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("pool,size", [("cls", (28, 28)), ("mean", (32, 32)), ("cls", (20, 24))])
def test_vit_taps_give_token_sequences_and_the_declared_pairs(pool, size):
    model = create_model("vit", dim=32, depth=3, heads=2, pool=pool, img_size=size, in_chans=1, num_classes=7).eval()
    tokens = (size[0] // 4) * (size[1] // 4) + (pool == "cls")
    with FlowRecorder(model, [fi.module for fi in model.feature_info]) as rec:
        logits = model(torch.randn(2, 1, *size))
    assert logits.shape == (2, 7)
    for fi in model.feature_info:
        assert rec.features[next(t for t in rec.features if t.module == fi.module)].shape == (2, tokens, 32), fi
    assert model.default_fsp_pairs == [("embed", "blocks.1"), ("blocks.1", "blocks.2")]


def test_registered_sizes_and_bad_arguments():
    tiny, small = create_model("vit_tiny", in_chans=1), create_model("vit_small", in_chans=1)
    assert _params(small) >= 4 * _params(tiny)
    assert (tiny.dim, tiny.depth, tiny.heads) == (64, 4, 4) and (small.dim, small.depth, small.heads) == (128, 6, 8)
    assert create_model("vit_tiny", in_chans=1)(torch.randn(1, 1, 28, 28)).shape == (1, 10)  # grid 8x8 resized to 7x7
    with pytest.raises(TypeError, match="not divisible by heads"):
        create_model("vit", dim=30, heads=4)
    with pytest.raises(TypeError, match="pool must be 'cls' or 'mean'"):
        create_model("vit", pool="max")


def test_the_data_s_image_size_reaches_factories_that_name_img_size_only():
    model, kwargs = create_for_data("vit_tiny", 1, 4, image_size=(28, 28))
    assert kwargs == {"in_chans": 1, "num_classes": 4, "img_size": 28} and model.grid == (7, 7)
    assert create_for_data("vit_tiny", 1, 4, {"img_size": 32}, image_size=(28, 28))[1]["img_size"] == 32  # user wins
    assert create_for_data("vit", 3, 4, image_size=(20, 24))[1]["img_size"] == [20, 24]
    assert "img_size" not in create_for_data("resnet8", 1, 4, image_size=(28, 28))[1]


def _perturbed(name: str = "vit", **kw) -> VisionTransformer:
    """A ViT with non-trivial weights everywhere (LayerNorm scales and shifts, biases, embeddings)."""
    model = create_model(name, in_chans=1, num_classes=5, img_size=12, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


CASES = {  # (prev, cur) kwargs of `vit`
    "deeper": (dict(dim=16, depth=2, heads=2), dict(dim=16, depth=5, heads=2)),
    "wider (more heads)": (dict(dim=16, depth=2, heads=2), dict(dim=32, depth=2, heads=4, mlp_ratio=3.0)),
    "both": (dict(dim=16, depth=3, heads=2), dict(dim=48, depth=4, heads=6)),
    "wider heads, uneven MLP copies": (dict(dim=16, depth=2, heads=4), dict(dim=32, depth=3, heads=4, mlp_ratio=2.5)),
    "mean pool": (dict(dim=16, depth=2, heads=2, pool="mean"), dict(dim=32, depth=3, heads=4, pool="mean")),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_growth_gives_the_small_vit_s_logits(case, noise):
    torch.manual_seed(0)
    kp, kc = CASES[case]
    prev, cur = _perturbed(**kp), _perturbed(**kc)
    assert growth_problem(prev, cur) is None
    rec = grow(prev, cur, noise=noise, seed=3)
    assert rec["family"] == "vit" and rec["deeper"] == (cur.depth > prev.depth) and rec["wider"] == (cur.dim > prev.dim)
    x = torch.randn(6, 1, 12, 12)
    for train in (False, True):
        prev.train(train)
        cur.train(train)
        with torch.no_grad():
            a, b = cur(x), prev(x)
        assert ((a - b).norm() / b.norm()).item() < 1e-5, (case, noise, train)


def test_uneven_head_copies_keep_the_function():
    """Heads are copied whole: 2 heads of 8 -> 3 heads of 16 (head 2 copies head 0), q split and rescaled."""
    torch.manual_seed(1)
    prev, cur = _perturbed(dim=16, depth=2, heads=2), _perturbed(dim=48, depth=2, heads=3)
    grow(prev, cur, noise=0.3, seed=0)
    x = torch.randn(4, 1, 12, 12)
    with torch.no_grad():
        a, b = cur.eval()(x), prev.eval()(x)
    assert ((a - b).norm() / b.norm()).item() < 1e-5


def test_tiny_grows_into_small_and_noise_breaks_the_copies_symmetry():
    torch.manual_seed(0)
    tiny, small = create_model("vit_tiny", in_chans=1, img_size=28), create_model("vit_small", in_chans=1, img_size=28)
    grow(tiny, small, noise=0.1, seed=2)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        a, b = small.eval()(x), tiny.eval()(x)
    assert ((a - b).norm() / b.norm()).item() < 1e-5
    w = small.blocks[0].mlp.fc1.weight  # (256, 128): stream coordinate 0 and its copy 64 carry unequal shares
    assert not torch.allclose(w[:, 0], w[:, 64])
    torch.testing.assert_close(w[0, 0] + w[0, 64], tiny.blocks[0].mlp.fc1.weight[0, 0])
    for i in (2, 5):  # the new blocks of each half are identities: zero output projections
        assert small.blocks[i].attn.proj.weight.abs().sum() == 0 and small.blocks[i].mlp.fc2.bias.abs().sum() == 0


def test_micro_grows_into_tiny_wider_and_deeper_at_once():
    """The ViT bench pair (configs/vit.yaml): vit_micro -> vit_tiny, 2 -> 4 heads of 16, 2 -> 4 blocks."""
    torch.manual_seed(1)
    micro, tiny = create_model("vit_micro", in_chans=1, img_size=28), create_model("vit_tiny", in_chans=1, img_size=28)
    assert growth_problem(micro, tiny) is None
    grow(micro, tiny, noise=0.1, seed=0)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        a, b = tiny.train()(x), micro.train()(x)
    assert ((a - b).norm() / b.norm()).item() < 1e-5


def test_growth_problems_name_the_reason_and_grow_fsp_needs_equal_dims():
    small = create_model("vit", dim=16, depth=2, heads=2)
    assert "not a multiple" in growth_problem(small, create_model("vit", dim=24, depth=2, heads=2))
    assert "fewer blocks" in growth_problem(create_model("vit", dim=16, depth=3, heads=2), small)
    assert "heads are copied whole" in growth_problem(small, create_model("vit", dim=32, depth=2, heads=1))
    assert "position grid" in growth_problem(small, create_model("vit", dim=16, depth=3, heads=2, img_size=28))
    assert "pool" in growth_problem(small, create_model("vit", dim=16, depth=3, heads=2, pool="mean"))
    assert "one growth family" in growth_problem(small, create_model("resnet8"))
    deeper, wider = create_model("vit", dim=16, depth=4, heads=2), create_model("vit", dim=32, depth=4, heads=4)
    assert fresh_blocks_problem(small, deeper) is None
    assert "equal widths" in fresh_blocks_problem(small, wider)
    copied = grown_copies(small, deeper)
    assert [m for m in copied if m in set(deeper.blocks)] == [deeper.blocks[0], deeper.blocks[2]]
    fresh = deeper.blocks[1].attn.proj.weight.clone()
    grow(small, deeper, identity=False)
    torch.testing.assert_close(deeper.blocks[1].attn.proj.weight, fresh)  # grow-fsp: new blocks stay fresh


def test_layers_lists_token_shapes(capsys):
    assert main(["layers", "vit_tiny", "--input-shape", "1,28,28"]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines()
             if ln and not ln.startswith(("vit_tiny", "module", "default"))}
    assert "(50, 64)" in lines["embed"] and "(50, 64)" in lines["blocks.3"] and "(64, 7, 7)" in lines["embed.proj"]
    assert "(50, 128)" in lines["blocks.0.mlp.fc1"]
    assert "(N, d)" in out and "default FSP pairs: (embed, blocks.1), (blocks.1, blocks.3)" in out


TEACHER = "{dim: 16, depth: 2, heads: 2}"
TARGET = "[{name: target, model: vit, kwargs: {dim: 32, depth: 3, heads: 4}}]"
DEEPER = "[{name: target, model: vit, kwargs: {dim: 16, depth: 4, heads: 2}}]"  # same width: new blocks only


@pytest.fixture(scope="module")
def vit_teacher(tmp_path_factory):
    from conftest import make_idx_folder

    root = tmp_path_factory.mktemp("vit")
    idx = make_idx_folder(root)
    teacher = root / "t.pt"
    assert main(["train", "--model", "vit", "--kwargs", TEACHER, "--save", str(teacher), "--set", "stage2.epochs=1",
                 "--set", "data.train_subset=64", *bench_args(idx)]) == 0
    return root, idx, teacher


@pytest.mark.parametrize("recipe,rungs", [("grow", TARGET), ("patent", TARGET), ("grow-fsp", DEEPER),
                                          ("grow-joint", DEEPER), ("patent-joint", DEEPER)])
def test_recipes_train_a_vit_target_from_a_vit_teacher(vit_teacher, recipe, rungs):
    root, idx, teacher = vit_teacher
    out = root / f"run-{recipe}"
    assert main(["run", "--out", str(out), "--no-report", "--set", f"teacher.checkpoint={teacher}",
                 "--set", f"recipe={recipe}", "--set", f"rungs={rungs}", "--set", "data.train_subset=64",
                 "--set", "stage1.epochs=1", "--set", "stage2.epochs=1", "--set", "stage1.project_channels=true",
                 *bench_args(idx)]) == 0
    (rung,) = json.loads((out / "summary.json").read_text())["rungs"]
    assert rung["model"] == "vit" and len(rung["stage2"]["val_acc"]) == 1
    if recipe == "grow":
        assert rung["init"]["init"] == "grow" and rung["init"]["family"] == "vit" and rung["init"]["wider"]
        assert rung["stage1"] is None
    if recipe == "grow-fsp":
        assert rung["init"]["new_blocks"] == "fresh" and rung["stage1"]["trained_parts"] == "new blocks"
    if rung["stage1"] is not None:
        assert rung["stage1"]["fsp_loss_end"] <= rung["stage1"]["fsp_loss_start"]
