"""CIFAR archives and image folders, on small files written here."""

import pickle

import numpy as np
import pytest
from conftest import write_cifar10

from fspladder.data import DataFileError, load_cifar, load_image_folder


def test_cifar10_loads_from_the_archive_folder_or_its_parent(tmp_path):
    d = write_cifar10(tmp_path)
    for root in (d, tmp_path):
        s = load_cifar(root, 10, val_size=20)
        assert (len(s.train), len(s.val), len(s.test)) == (180, 20, 40)
        assert s.train.x.shape[1:] == (3, 32, 32) and s.num_classes == 10 and len(s.mean) == 3


def test_cifar100_fine_labels(tmp_path):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    for name, n in (("train", 300), ("test", 10)):
        with open(d / name, "wb") as f:
            pickle.dump({b"data": np.zeros((n, 3072), np.uint8), b"fine_labels": [k % 100 for k in range(n)],
                         b"coarse_labels": [0] * n}, f)
    s = load_cifar(d, 100, val_size=10)
    assert s.num_classes == 100 and int(s.train.y.max()) == 99


def test_cifar_truncated_and_missing_files_are_named(tmp_path):
    d = write_cifar10(tmp_path)
    raw = (d / "data_batch_3").read_bytes()
    (d / "data_batch_3").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFileError, match="data_batch_3 is truncated"):
        load_cifar(d, 10, val_size=20)
    (d / "data_batch_3").unlink()
    with pytest.raises(DataFileError, match="missing CIFAR batch file .*data_batch_3"):
        load_cifar(d, 10, val_size=20)


def test_cifar_wrong_shape_is_refused(tmp_path):
    d = write_cifar10(tmp_path)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, f)
    with pytest.raises(DataFileError, match=r"test_batch: expected uint8 data of shape \(N, 3072\)"):
        load_cifar(d, 10, val_size=20)


def _folder(root, split=True):
    from PIL import Image

    for part in (["train", "test"] if split else [""]):
        for k, cls in enumerate(["cat", "dog", "emu"]):
            p = root / part / cls
            p.mkdir(parents=True)
            for i in range(6 if part != "test" else 2):
                Image.new("RGB", (10 + i, 12), (40 * k, 10 * i, 0)).save(p / f"{i}.png")


def test_image_folder_with_train_and_test(tmp_path):
    _folder(tmp_path)
    s = load_image_folder(tmp_path, image_size=16, channels=3, val_size=3)
    assert s.num_classes == 3 and (len(s.train), len(s.val), len(s.test)) == (15, 3, 6)
    assert s.train.x.shape[1:] == (3, 16, 16)
    g = load_image_folder(tmp_path, image_size=8, channels=1, val_size=3)
    assert g.train.x.shape[1:] == (1, 8, 8)


def test_image_folder_without_split_takes_a_per_class_test_set(tmp_path):
    _folder(tmp_path, split=False)
    s = load_image_folder(tmp_path, image_size=8, val_size=2, test_fraction=0.34)
    assert len(s.test) == 6 and sorted(s.test.y.tolist()) == [0, 0, 1, 1, 2, 2]


def test_image_folder_bad_image_and_bad_layout(tmp_path):
    _folder(tmp_path)
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataFileError, match="broken.png cannot be read"):
        load_image_folder(tmp_path, val_size=3)
    with pytest.raises(DataFileError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
    lonely = tmp_path / "lonely"
    (lonely / "only").mkdir(parents=True)
    with pytest.raises(DataFileError, match="one sub-folder per class"):
        load_image_folder(lonely)
