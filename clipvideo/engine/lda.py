"""`clipvideo text4vis-lda RECIPE`: Text4Vis's LDA classifier, fitted on frozen-CLIP video features.

The fit needs the recipe's data pipeline (engine), the math does not: `lda_classifier` stays in
`methods/text4vis.py`, which imports nothing from the engine; the seeded per-class sample is the
data layer's (`clipvideo.data.splits`).
"""

from pathlib import Path

import torch

from ..data.splits import sample_per_class
from ..methods.base import build_clip
from ..methods.text4vis import Config, lda_classifier
from .config import TestConfig, method_config
from .data import build_eval_dataset, read_classes


@torch.no_grad()
def fit_lda_from_recipe(config, output: str | Path, per_class: int = 60, seed: int = 0,
                        device: str = "cpu") -> Path:
    """Embed a seeded per-class sample of `data.train_list` with the frozen CLIP image tower
    (centre view, mean over frames), fit LDA, save the (K, E) classifier to `output`.

    The paper used 60 videos per Kinetics-400 class (about 10% of the training set).
    """
    data = config.data
    class_names = read_classes(data)
    dataset = build_eval_dataset(data, TestConfig(num_clips=1, num_crops=1), class_names, list_file=data.train_list)
    labels = [record.labels[0] for record in dataset.records]
    num_classes = len(class_names) if class_names else dataset.num_classes
    subset = sample_per_class(labels, per_class, seed, allow_fewer=True)  # "up to 60 per class"
    model_config = config.model if isinstance(config.model, Config) else method_config("text4vis", config.model)
    clip = build_clip(model_config.backbone, with_text=False).to(device).eval()
    features, targets = [], []
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, subset), batch_size=8,
                                         num_workers=data.num_workers)
    for views, label, _index, valid in loader:
        frames = views[:, 0].to(device)  # (B, T, 3, H, W): the single view
        embeddings = clip.encode_image(frames.flatten(0, 1)).view(*frames.shape[:2], -1).mean(dim=1)
        features.append(embeddings[valid].float().cpu())
        targets.append(label[valid])
    weights = lda_classifier(torch.cat(features), torch.cat(targets), num_classes)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(weights, output)
    return output


__all__ = ["fit_lda_from_recipe"]
