"""forward_intermediates on towers whose blocks are subclassed (X-CLIP, AIM, FROSTER style)."""

import pytest
import torch

from clipvideo.clip import CLIP, ResidualAttentionBlock, get_architecture
from clipvideo.clip.transformer import BlockOutput


class FrameMixBlock(ResidualAttentionBlock):
    """Toy video block: before attention, each token gets the mean of its clip's frames (needs num_frames)."""

    def mix(self, x, num_frames):
        clips = x.unflatten(0, (-1, num_frames))  # (B, T, L, C)
        return x + clips.mean(dim=1, keepdim=True).expand_as(clips).flatten(0, 1)

    def forward(self, x, attn_mask=None, num_frames=1):
        return super().forward(self.mix(x, num_frames), attn_mask)

    def forward_with_qkv(self, x, attn_mask=None, num_frames=1):
        return super().forward_with_qkv(self.mix(x, num_frames), attn_mask)


class ForwardOnlyBlock(ResidualAttentionBlock):
    """Changes forward but gives no forward_with_qkv: a tap cannot honour it."""

    def forward(self, x, attn_mask=None):
        return super().forward(2 * x, attn_mask)


def tiny(block):
    torch.manual_seed(0)
    return CLIP(get_architecture("tiny"), vision_block=block, with_text=False).eval()


def test_taps_run_the_subclass_with_its_block_kwargs():
    model = tiny(FrameMixBlock)
    images = torch.randn(4, 3, 64, 64)  # 2 clips x 2 frames
    outputs = []
    hooks = [b.register_forward_hook(lambda m, i, o: outputs.append(o)) for b in model.visual.transformer.resblocks]
    with torch.no_grad():
        features = model.encode_image(images, num_frames=2)
        for h in hooks:
            h.remove()
        result = model.visual.forward_intermediates(images, indices=2, num_frames=2)
        unmixed = model.encode_image(images, num_frames=1)
    assert not torch.allclose(features, unmixed)  # num_frames reaches the blocks
    torch.testing.assert_close(result.features, features)
    assert all(isinstance(tap, BlockOutput) for tap in result.blocks)
    for tap, out in zip(result.blocks, outputs):
        torch.testing.assert_close(tap.out, out)  # each tap is the subclass's own output

    model.visual.set_grad_checkpointing(True)
    images.requires_grad_(True)
    again = model.visual.forward_intermediates(images, indices=[0], num_frames=2)
    torch.testing.assert_close(again.features, features)


def test_a_block_that_only_overrides_forward_cannot_be_tapped_silently():
    model = tiny(ForwardOnlyBlock)
    images = torch.randn(2, 3, 64, 64)
    with pytest.raises(TypeError, match="ForwardOnlyBlock overrides forward but not forward_with_qkv"):
        model.visual.forward_intermediates(images, indices=1)
    model.visual(images)  # plain forward is fine
