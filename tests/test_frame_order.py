"""Which methods can tell a clip from the same clip played backwards, by construction.

A model whose logits are the same for a clip and its reverse cannot beat a frame mean on the
frame-order pairs of the synthetic sets (clipvideo.data.synthetic): over a balanced pair set its
accuracy on the clips plus its accuracy on the reversed clips is at most 1. docs/frame_order.md
has the trained numbers.
"""

import torch

from clipvideo.methods import froster
from clipvideo.methods.base import BackboneConfig

NAMES = ["disc moving up", "disc moving down", "ring growing", "ring shrinking"]


def trained_a_little(model, video):
    """A few steps towards arbitrary targets, so no weight keeps its symmetric initial value."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        loss = model.loss(video, torch.tensor([0, 3]))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_froster_gives_a_clip_and_its_reverse_the_same_logits():
    """FROSTER's student (Open-VCLIP) lets each frame attend to its neighbours' tokens with no
    temporal position: frame t sees the key/value set {t-1, t, t+1}, the same set its mirror frame
    sees in the reversed clip, and the logits average over frames. Reversal only permutes the frame
    embeddings, so the logits cannot depend on the direction, whatever the weights."""
    video = torch.randn(2, 8, 3, 64, 64)
    model = trained_a_little(froster.build(froster.Config(backbone=BackboneConfig(arch="tiny"), distillation=False), 4, NAMES).train(), video)
    with torch.no_grad():
        torch.testing.assert_close(model(video.flip(1)), model(video), atol=1e-5, rtol=1e-5)
