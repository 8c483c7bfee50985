"""Crafted official checkpoints: the restricted reader bounds what a file can make it do.

Each file is written by hand (a pickle that names storages by persistent id, plus the zip
members torch.save would write), so that sizes, strides and compression are whatever the test
says, not what torch.save would produce.
"""

import io
import pickle
import zipfile
from collections import OrderedDict

import pytest
import torch

from clipvideo.clip import CheckpointError, checkpoint_io
from clipvideo.official import xclip as official_xclip
from clipvideo.official.xclip import read_checkpoint


class _Storage:
    """Marks where the pickle refers to archive member data/<key>."""

    def __init__(self, key: str, numel: int):
        self.key, self.numel = key, numel


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.args = (storage, offset, size, stride, False, OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def crafted_file(path, tensors: dict, members: dict[str, bytes], compress: bool = False):
    """A torch.save-style zip: archive/data.pkl pickling `tensors`, and archive/data/<key> members."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump({"model": tensors})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, data in members.items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return path


def floats(n: int) -> bytes:
    return torch.arange(n, dtype=torch.float32).numpy().tobytes()


def test_an_honest_crafted_file_reads(tmp_path):
    storage = _Storage("0", 6)
    path = crafted_file(tmp_path / "ok.pth", {"w": _Tensor(storage, 0, (2, 3), (3, 1))}, {"0": floats(6)})
    read = read_checkpoint(path)["model"]["w"]
    assert torch.equal(read, torch.arange(6, dtype=torch.float32).view(2, 3))


@pytest.mark.parametrize("offset, size, stride", [
    (0, (1000, 1000), (1000, 1)),  # far more elements than the storage holds
    (5, (4,), (1,)),  # runs past the end from an offset
    (0, (10**12,), (0,)),  # a stride-0 view that a later copy would turn into 4 TB
    (0, (2, 3), (-3, 1)),  # a negative stride
    (-1, (2,), (1,)),  # a negative offset
])
def test_crafted_sizes_and_strides_are_one_line_checkpoint_errors(tmp_path, offset, size, stride):
    storage = _Storage("0", 6)
    path = crafted_file(tmp_path / "crafted.pth", {"w": _Tensor(storage, offset, size, stride)}, {"0": floats(6)})
    with pytest.raises(CheckpointError, match=r"crafted.pth: cannot read the checkpoint") as raised:
        read_checkpoint(path)
    assert "\n" not in str(raised.value)


def test_a_storage_bigger_than_its_member_is_refused_without_reading_past_it(tmp_path):
    storage = _Storage("0", 10**9)  # the pickle claims 4 GB; the member holds 24 bytes
    path = crafted_file(tmp_path / "claims.pth", {"w": _Tensor(storage, 0, (6,), (1,))}, {"0": floats(6)})
    with pytest.raises(CheckpointError, match=r"claims.pth: .*data/0 holds 24 bytes"):
        read_checkpoint(path)


def test_a_deflated_member_is_bounded_not_read_whole(tmp_path, monkeypatch):
    # 4 MiB of zeros deflate to a few KiB: with the bound lowered to 1 MiB, inflating it is refused.
    monkeypatch.setattr(checkpoint_io, "MIN_INFLATION_BOUND", 2**20)
    numel = 2**20
    storage = _Storage("0", numel)
    path = crafted_file(tmp_path / "bomb.pth", {"w": _Tensor(storage, 0, (numel,), (1,))},
                        {"0": bytes(4 * numel)}, compress=True)
    with pytest.raises(CheckpointError, match=r"bomb.pth: .*would inflate .*zip bomb"):
        read_checkpoint(path)
    # a small deflated member within the bound still reads
    small = crafted_file(tmp_path / "small.pth", {"w": _Tensor(_Storage("0", 6), 0, (6,), (1,))},
                         {"0": floats(6)}, compress=True)
    assert read_checkpoint(small)["model"]["w"].tolist() == list(range(6))


def test_crafted_file_through_the_cli_is_one_line(tmp_path, capsys):
    from clipvideo.cli import main

    storage = _Storage("0", 6)
    path = crafted_file(tmp_path / "crafted.pth", {"w": _Tensor(storage, 0, (1000,), (1,))}, {"0": floats(6)})
    assert main(["convert", "xclip", str(path), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clipvideo convert: error: ") and "crafted.pth" in err and err.count("\n") == 1
    assert "Traceback" not in err and "weights_only=False" not in err
