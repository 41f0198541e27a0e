import io

import pytest
import torch

from fspladder import CheckpointError, create_model, load_checkpoint, load_model, save_checkpoint


def _save(path):
    m = create_model("resnet8", in_chans=1, num_classes=3)
    save_checkpoint(path, m, {"name": "resnet8", "kwargs": {"in_chans": 1, "num_classes": 3}}, {"note": "x"})
    return m


def test_round_trip_and_permissions(tmp_path):
    m = _save(tmp_path / "a.pt")
    loaded, info = load_model(tmp_path / "a.pt", {"name": "resnet8", "kwargs": {"num_classes": 3}})
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), loaded.state_dict().values()))
    assert info["meta"] == {"note": "x"}
    assert (tmp_path / "a.pt").stat().st_mode & 0o044  # readable by others, as files usually are
    assert not list(tmp_path.glob(".*.tmp"))


def test_checksum_catches_altered_weights(tmp_path):
    _save(tmp_path / "a.pt")
    ck = torch.load(tmp_path / "a.pt", weights_only=True)
    ck["state_dict"]["fc.bias"][0] += 1.0
    buf = io.BytesIO()
    torch.save(ck, buf)
    (tmp_path / "a.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        load_checkpoint(tmp_path / "a.pt")


def test_truncated_foreign_and_mismatched_files(tmp_path):
    _save(tmp_path / "a.pt")
    raw = (tmp_path / "a.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="is not a readable fspladder checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    # An image given as a checkpoint: one line that says what it is not, never torch's advice to load it
    # with weights_only=False (which can run code).
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "photo.png")
    msg = str(e.value)
    assert "not a readable fspladder checkpoint" in msg and "weights_only" not in msg and "\n" not in msg
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an fspladder checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="holds resnet8 .* but the config asks for resnet20"):
        load_model(tmp_path / "a.pt", {"name": "resnet20", "kwargs": {}})
    with pytest.raises(CheckpointError, match="no built-in checkpoint 'nope'; shipped: .*resnet8_fmnist"):
        load_checkpoint("builtin:nope")
