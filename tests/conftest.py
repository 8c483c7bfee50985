import atexit
import os
import shutil
import tempfile

# open_clip otherwise retries the Hugging Face hub for ~50 s before failing offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Stored class embeddings go to a folder of this run, never the user's cache (CLI subprocesses inherit it).
os.environ["CLIPVIDEO_TEXT_CACHE"] = tempfile.mkdtemp(prefix="clipvideo-text-cache-")
atexit.register(shutil.rmtree, os.environ["CLIPVIDEO_TEXT_CACHE"], ignore_errors=True)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _direction_scores(model, dataset, classes):
    """Accuracy on the moving-* clips, on the same clips played backwards (labels swapped),
    and how often reversing a clip changes the answer."""
    opposite = {"moving left": "moving right", "moving right": "moving left",
                "moving up": "moving down", "moving down": "moving up"}
    clips = torch.stack([dataset[i][0][0] for i in range(len(dataset))])  # (N, T, 3, H, W), one view each
    labels = torch.tensor([dataset[i][1] for i in range(len(dataset))])
    reversed_label = torch.tensor([classes.index(opposite[name]) for name in classes])
    with torch.no_grad():
        forward = model(clips).argmax(dim=1)
        backward = model(clips.flip(1)).argmax(dim=1)  # the same frames, played backwards
    return ((forward == labels).float().mean().item(),
            (backward == reversed_label[labels]).float().mean().item(),
            (forward != backward).float().mean().item())


@pytest.fixture
def direction_scores():
    return _direction_scores


@pytest.fixture(scope="session")
def tiny_clip_file(tmp_path_factory):
    """A tiny random CLIP saved as an OpenAI-format state dict."""
    from clipvideo.clip import create_clip

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clip") / "tiny-clip.pt"
    torch.save(create_clip("tiny").state_dict(), path)
    return path
