"""Model files are written like any other output: the umask decides their mode (0644 under the
usual 022), not mkstemp's private 0600, so others on a shared cluster can read them."""

import os
import stat

import pytest
import torch

from clipvideo.engine.checkpoint import atomic_save


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_checkpoints_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_save({"w": torch.zeros(2)}, tmp_path / "model.pt")
        atomic_save({"w": torch.zeros(2)}, tmp_path / "model.pt")  # replacing keeps it so
        assert os.umask(umask) == umask  # the umask itself is left as it was
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "model.pt").stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def test_counts_are_singular_for_one():
    from clipvideo.data import views_text
    from clipvideo.errors import plural

    assert views_text(8, 1, 1) == "8 frames x 1 clip x 1 crop"
    assert views_text(1, 4, 3) == "1 frame x 4 clips x 3 crops"
    assert plural(1, "view") == "1 view" and plural(2, "view") == "2 views" and plural(0, "video") == "0 videos"
