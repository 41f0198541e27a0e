"""Growth for every family (issue 24): the grown network gives the small one's logits to float32 rounding,
deeper, wider and both, in train and eval mode; a user-registered family grows through `fspladder run`;
`fspladder check` refuses two networks of different families with one message naming the recipes that work."""

from __future__ import annotations

import copy
import json

import growth_user_model  # noqa: F401  (registers tiny_growable and its growth family "tiny")
import pytest
import torch
import torch.nn as nn
from conftest import bench_args, make_idx_folder

from fspladder import create_model, load_model, save_checkpoint
from fspladder.cli import main
from fspladder.growth import (
    GrowthError,
    GrowthFamily,
    families,
    family_of,
    grow,
    grown_copies,
    growth_problem,
    register_growth,
)
from fspladder.growth.registry import _FAMILIES

# family: (model name, kwargs of the small network, kwargs of the deeper one, of the wider one, of both, image)
CASES = {
    "cifar-resnet": ("resnet", {"depth": 8}, {"depth": 14}, {"depth": 8, "width": 2}, {"depth": 20, "width": 3}, 12),
    "vgg": ("vgg", {"blocks": 1}, {"blocks": 3}, {"blocks": 1, "width": 2}, {"blocks": 2, "width": 3}, 12),
    "imagenet-basic": ("resnet_imagenet", {"layers": [1, 1, 1, 1]}, {"layers": [2, 1, 3, 2]},
                       {"layers": [1, 1, 1, 1], "width": 2}, {"layers": [2, 2, 1, 2], "width": 3}, 32),
    "imagenet-bottleneck": ("resnet_imagenet", {"block": "bottleneck", "layers": [1, 1, 1, 1]},
                            {"block": "bottleneck", "layers": [1, 2, 2, 1]},
                            {"block": "bottleneck", "layers": [1, 1, 1, 1], "width": 2},
                            {"block": "bottleneck", "layers": [2, 2, 2, 2], "width": 2}, 32),
    "user": ("tiny_growable", {"depth": 1}, {"depth": 3}, {"depth": 1, "width": 16}, {"depth": 2, "width": 20}, 12),
}


def _trained_stats(model: nn.Module, image: int) -> nn.Module:
    """Non-trivial BatchNorm parameters and running statistics: random affines, then a few train-mode passes."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, image, image) * 2.0 + 0.5)
    return model


def _assert_same_logits(a: torch.Tensor, b: torch.Tensor, what) -> None:
    # float32 rounding through the layers: relative to the logits' magnitude
    torch.testing.assert_close(a, b, rtol=0, atol=2e-5 * b.abs().max().item(), msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("family", list(CASES))
@pytest.mark.parametrize("how", ["deeper", "wider", "both"])
def test_grow_keeps_the_logits_in_train_and_eval_mode(family, how):
    name, small_kw, deeper, wider, both, image = CASES[family]
    torch.manual_seed(0)
    small = _trained_stats(create_model(name, in_chans=1, num_classes=5, **small_kw), image)
    big_kw = {"deeper": deeper, "wider": wider, "both": both}[how]
    big = create_model(name, in_chans=1, num_classes=5, **big_kw)
    assert growth_problem(small, big) is None
    record = grow(small, big, noise=0.1, seed=1)  # the recipes' split noise: symmetry broken, function kept
    assert record["deeper"] == (how != "wider") and record["wider"] == (how != "deeper"), record
    assert record["family"] == family_of(small).name
    x = torch.randn(6, 1, image, image) * 1.5 + 0.3
    for train in (False, True):  # train mode: BatchNorm uses the batch's statistics
        s, b = copy.deepcopy(small).train(train), copy.deepcopy(big).train(train)
        with torch.no_grad():
            _assert_same_logits(b(x), s(x), (family, how, "train" if train else "eval"))
    copied = grown_copies(small, big)
    assert copied and all(any(m is c for m in big.modules()) for c in copied)
    if how != "deeper":  # the grown network is a network of its own: the reverse is refused
        assert "narrower" in growth_problem(big, small) or "shallower" in growth_problem(big, small)


def test_families_are_registered_and_dispatch_by_class():
    names = [f.name for f in families()]
    assert {"cifar-resnet", "vgg", "imagenet-resnet", "tiny"} <= set(names)
    assert family_of(create_model("resnet18i")).name == "imagenet-resnet"
    assert family_of(create_model("resnet26b")).name == "imagenet-resnet"
    assert family_of(create_model("vgg8")).name == "vgg" and family_of(nn.Linear(2, 2)) is None

    class Sub(growth_user_model.TinyNet):  # a subclass belongs to its base's family
        pass

    assert family_of(Sub()).name == "tiny"
    with pytest.raises(ValueError, match="already belongs to family 'vgg'"):
        @register_growth
        class Thief(GrowthFamily):
            name, models = "thief", (type(create_model("vgg8")),)
    assert "thief" not in [f.name for f in _FAMILIES]


def test_growth_across_families_names_the_recipes_that_work():
    msg = growth_problem(create_model("vgg8"), create_model("resnet20"))
    assert "PlainCNN (family vgg)" in msg and "CifarResNet (family cifar-resnet)" in msg and "another family" in msg
    assert "init random (patent, scratch, soft, w2s, ladder-w2s, patent-joint)" in msg
    msg = growth_problem(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), create_model("resnet20"))
    assert "Sequential (no growth family)" in msg and "@fspladder.register_growth" in msg and "patent" in msg
    assert "basic and bottleneck" in growth_problem(create_model("resnet18i"), create_model("resnet26b"))
    with pytest.raises(ValueError, match="another family"):
        grow(create_model("resnet10i"), create_model("vgg8"))


def test_imagenet_resnet_taps_are_declared_as_they_are():
    for name, shape in (("resnet10i", (1, 28, 28)), ("resnet26b", (3, 32, 32))):
        model = create_model(name, in_chans=shape[0], num_classes=4).eval()
        seen = {}
        hooks = [model.get_submodule(f.module).register_forward_hook(
            lambda m, i, o, k=f.module: seen.__setitem__(k, o.shape)) for f in model.feature_info]
        with torch.no_grad():
            model(torch.randn(2, *shape))
        for h in hooks:
            h.remove()
        for f in model.feature_info:
            assert seen[f.module][1] == f.num_chs and seen[f.module][2] == -(-shape[1] // f.reduction), (name, f)
        assert len(model.default_fsp_pairs) == 4


def test_grown_vgg_saves_and_loads_its_skips_and_old_checkpoints_load_plain(tmp_path):
    from importlib.resources import files

    old, _ = load_model(str(files("fspladder") / "pretrained" / "vgg8_fmnist.pt"))
    assert all(m.skip.item() == 0 for m in old.modules() if getattr(m, "keeps_shape", False))
    torch.manual_seed(0)
    small = _trained_stats(create_model("vgg", blocks=1, in_chans=1, num_classes=5), 12)
    big = create_model("vgg", blocks=2, width=2, in_chans=1, num_classes=5)
    grow(small, big)
    save_checkpoint(tmp_path / "big.pt", big, {"name": "vgg", "kwargs": {"blocks": 2, "width": 2, "in_chans": 1,
                                                                         "num_classes": 5}})
    loaded, _ = load_model(str(tmp_path / "big.pt"))
    x = torch.randn(4, 1, 12, 12)
    with torch.no_grad():
        _assert_same_logits(loaded.eval()(x), small.eval()(x), "reloaded")


def test_check_refuses_two_families_with_one_message(tmp_path, capsys):
    idx = make_idx_folder(tmp_path)
    vgg = tmp_path / "vgg.pt"
    save_checkpoint(vgg, create_model("vgg8", in_chans=1, num_classes=4),
                    {"name": "vgg8", "kwargs": {"in_chans": 1, "num_classes": 4}})
    rc = main(["check", "--set", "data.name=idx", "--set", f"data.root={idx}", "--set", "data.val_size=100",
               "--set", f"teacher.checkpoint={vgg}", "--set", "recipe=grow",
               "--set", "rungs=[{name: big, model: resnet20}]"])
    err = capsys.readouterr().err
    assert rc == 2 and "1 problem(s)" in err, err
    assert "cannot grow from teacher" in err and "init random (patent, scratch, soft, w2s" in err, err


@pytest.mark.parametrize("model, small, big, family", [
    ("tiny_growable", "{}", "{depth: 3, width: 16}", "tiny"),  # a family the project does not ship
    ("vgg", "{blocks: 1}", "{blocks: 2, width: 2}", "vgg"),
])
def test_run_grows_a_registered_family_end_to_end(tmp_path, model, small, big, family):
    idx = make_idx_folder(tmp_path)
    common = [*bench_args(idx), "--set", "data.train_subset=64", "--set", "stage2.epochs=1"]
    teacher = tmp_path / "t.pt"
    assert main(["train", "--model", model, "--save", str(teacher), "--kwargs", small, *common]) == 0
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--no-report", "--set", f"teacher.checkpoint={teacher}",
                 "--set", "recipe=grow", "--set", f"rungs=[{{name: big, model: {model}, kwargs: {big}}}]",
                 *common]) == 0
    s = json.loads((out / "summary.json").read_text())
    (rung,) = s["rungs"]
    assert rung["recipe"]["init"] == "grow" and rung["init"]["family"] == family
    assert rung["init"]["deeper"] and rung["init"]["wider"]


def test_docs_growth_example_runs():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    start = page.index("```python\n", page.index("**Growth for your own model**")) + len("```python\n")
    code = page[start: page.index("```\n", start)]
    exec(compile(code, "docs/models.md (Growth for your own model)", "exec"), {"__name__": "readme_growth_example"})
    assert "mynet" in [f.name for f in families()]


# ---------------------------------------------------------------- issue 34: the checks every family needs
def _docs_family() -> type:
    """The docs' example family (docs/models.md), registered; its model class."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    start = page.index("```python\n", page.index("**Growth for your own model**")) + len("```python\n")
    scope: dict = {"__name__": "readme_growth_example"}
    exec(compile(page[start: page.index("```\n", start)], "docs/models.md", "exec"), scope)
    return scope["Net"]


@pytest.mark.parametrize("make", ["docs", "tiny_growable", "resnet", "vgg", "resnet_imagenet", "vit"])
def test_growth_refuses_other_classes_channels_and_smaller_students_for_every_family(make):
    """What no family's own code checks for the user's families: the growth layer checks it before any of it."""
    if make == "docs":
        net = _docs_family()

        def build(in_chans=1, num_classes=3, big=False):
            return net(depth=2 if big else 1, width=16 if big else 8, in_chans=in_chans, num_classes=num_classes)
    else:
        kw = {"tiny_growable": ({"depth": 1}, {"depth": 2, "width": 16}), "resnet": ({"depth": 8}, {"depth": 14}),
              "vgg": ({"blocks": 1}, {"blocks": 2}),
              "vit": ({"img_size": 32, "depth": 2}, {"img_size": 32, "depth": 3}),
              "resnet_imagenet": ({"layers": [1, 1, 1, 1]}, {"layers": [2, 1, 1, 1]})}[make]

        def build(in_chans=1, num_classes=3, big=False):
            return create_model(make, in_chans=in_chans, num_classes=num_classes, **kw[big])
    shape = (1, 32, 32)
    small = build()
    assert growth_problem(small, build(big=True), shape) is None
    two = build(num_classes=2, big=True)
    msg = growth_problem(small, two, shape)
    assert msg and "predict 3 and 2 classes" in msg and "init random" in msg, msg
    with pytest.raises(GrowthError):  # never torch's RuntimeError from a family's copy
        grow(small, two)
    msg = growth_problem(small, build(in_chans=3, big=True), (3, 32, 32))
    assert msg and ("3 channels" in msg or "1 and 3 channels" in msg), msg
    msg = growth_problem(build(big=True), build(), shape)
    assert msg and ("smaller" in msg or "narrower" in msg or "fewer" in msg), msg


def test_run_refuses_growth_across_classes_for_a_user_family_in_one_line(tmp_path, capsys):
    """The issue's case: a 3-class teacher of a user family, data.classes=[0, 1], recipe grow."""
    from fspladder.config import load_config
    from fspladder.errors import FspladderError
    from fspladder.runner import run_ladder

    idx = make_idx_folder(tmp_path)
    common = [*bench_args(idx), "--set", "data.train_subset=64", "--set", "stage2.epochs=1"]
    teacher = tmp_path / "t3.pt"
    assert main(["train", "--model", "growth_user_model:tiny_growable", "--save", str(teacher),
                 "--set", "data.classes=[0, 1, 2]", *common]) == 0
    sets = ["--set", f"teacher.checkpoint={teacher}", "--set", "recipe=grow", "--set", "data.classes=[0, 1]",
            "--set", "rungs=[{name: big, model: 'growth_user_model:tiny_growable', kwargs: {width: 16}}]"]
    capsys.readouterr()
    for cmd in (["check"], ["run", "--out", str(tmp_path / "run"), "--no-report"]):
        assert main([cmd[0], *common, *sets, *cmd[1:]]) == 2
        err = capsys.readouterr().err
        assert "predict 3 and 2 classes" in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()
    cfg = load_config(None, [s for s in [*common, *sets] if s != "--set" and s != "--no-progress"])
    with pytest.raises(FspladderError, match="predict 3 and 2 classes"):
        run_ladder(cfg, tmp_path / "py")
    assert not (tmp_path / "py").exists()


def test_a_family_that_checks_nothing_still_refuses_what_growth_cannot_do():
    """A user family whose `problem` accepts everything: the growth layer's own checks stand in for it."""
    class Lax(nn.Module):
        def __init__(self, width=8, in_chans=1, num_classes=3):
            super().__init__()
            self.conv, self.head = nn.Conv2d(in_chans, width, 3, padding=1), nn.Linear(width, num_classes)

        def forward(self, x):
            return self.head(self.conv(x).mean((2, 3)))

    class LaxGrowth(GrowthFamily):
        name, models = "lax-test", (Lax,)

        def problem(self, prev, cur):
            return None

        def copies(self, prev, cur):
            return [cur.conv, cur.head]

        def grow(self, prev, cur, *, identity, noise, seed):
            cur.head.weight.copy_(prev.head.weight)  # torch raises on any other shape
            return {}

    register_growth(LaxGrowth)
    try:
        shape = (1, 8, 8)
        assert growth_problem(Lax(), Lax(width=8), shape) is None
        assert "smaller" in growth_problem(Lax(width=8), Lax(width=4), shape)
        assert "predict 3 and 2 classes" in growth_problem(Lax(), Lax(num_classes=2), shape)
        assert "1 and 3 channels" in growth_problem(Lax(), Lax(in_chans=3), shape)
        with pytest.raises(GrowthError, match="could not copy"):  # no input_shape: the family's copy fails, one line
            grow(Lax(), Lax(width=16))
    finally:
        _FAMILIES[:] = [f for f in _FAMILIES if f.name != "lax-test"]
