import gzip

import numpy as np
import pytest
import torch
from conftest import write_idx

from fspladder.data import DataFileError, load_idx_folder, random_crop, random_flip, read_idx


def test_idx_round_trip_plain_and_gzip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for compress in (False, True):
        p = write_idx(tmp_path / f"a{compress}", arr, compress)
        np.testing.assert_array_equal(read_idx(p), arr)


def test_idx_truncated_file_is_refused(tmp_path):
    p = write_idx(tmp_path / "x", np.zeros((4, 5, 5), np.uint8), compress=False)
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(DataFileError, match=r"truncated.*shape \(4, 5, 5\)"):
        read_idx(p)


def test_idx_wrong_magic_is_refused(tmp_path):
    p = tmp_path / "bad.gz"
    p.write_bytes(gzip.compress(b"\x12\x34\x08\x01" + b"\x00" * 8))
    with pytest.raises(DataFileError, match="wrong magic number 12340801"):
        read_idx(p)


def test_idx_not_gzip_and_missing(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(b"not gzip at all")
    with pytest.raises(DataFileError, match="not a readable gzip"):
        read_idx(p)
    with pytest.raises(DataFileError, match="does not exist"):
        read_idx(tmp_path / "nope")


def test_load_idx_folder_split_and_classes(idx_folder):
    d = load_idx_folder(idx_folder, val_size=100, seed=0)
    assert (len(d.train), len(d.val), len(d.test)) == (500, 100, 200)
    assert d.num_classes == 4 and d.in_chans == 1 and d.image_size == (12, 12)
    d2 = load_idx_folder(idx_folder, val_size=100, seed=0)
    assert torch.equal(d.val.x, d2.val.x)  # the split is deterministic for a seed
    sub = load_idx_folder(idx_folder, val_size=50, seed=0, classes=[3, 1])
    assert sub.num_classes == 2 and set(sub.train.y.tolist()) == {0, 1}


def test_load_idx_folder_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        load_idx_folder(tmp_path / "nowhere")
    with pytest.raises(DataFileError, match="missing train-images-idx3-ubyte"):
        load_idx_folder(tmp_path)


def test_random_crop_shifts_content_within_padding():
    x = torch.zeros(64, 1, 8, 8, dtype=torch.uint8)
    x[:, :, 3, 3] = 255
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    pos = (out[:, 0] == 255).nonzero()[:, 1:]
    assert pos.min() >= 1 and pos.max() <= 5  # the pixel moved by at most 2 each way
    assert len({tuple(p.tolist()) for p in pos}) > 5  # offsets differ per image


def test_random_flip_flips_about_half():
    x = torch.arange(8, dtype=torch.uint8).view(1, 1, 1, 8).repeat(200, 1, 1, 1)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == 7).sum().item()
    assert 60 < flipped < 140
    assert all(torch.equal(o, x[0]) or torch.equal(o, x[0].flip(2)) for o in out)
