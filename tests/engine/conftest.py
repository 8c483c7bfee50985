import pytest


@pytest.fixture(scope="session")
def motion_data(tmp_path_factory):
    """A small synthetic motion dataset: real H.264 files, 9 classes."""
    from clipvideo.data.synthetic import make_motion_dataset

    return make_motion_dataset(tmp_path_factory.mktemp("motion"), num_videos_per_class=4, num_val_per_class=2,
                               num_frames=16, size=(64, 64), fps=8, seed=1)
