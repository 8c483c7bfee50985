"""The official EVL backbone in `freeze_fp16` mode, as plain tensor operations on the fixture's weights.

Why this exists: fp16 logits depend on the CPU's kernels. The stored `logits_fp16` came from the
official code on a CPU whose oneDNN had no native fp16 matmul (inputs widened to fp32, one rounding
per output). On a CPU with AVX512-FP16/AMX, oneDNN takes its native fp16 kernels and both the
official and our fp16 logits move by ~4e-4, as much as fp16 itself. So the fp16 test compares our
model with this reference computed on the machine running the test, and this reference is tied to
the official code twice: in fp32 it gives the fixture's `logits_fp32`, and with oneDNN held below
native fp16 (`ONEDNN_MAX_CPU_ISA`, run as a script in a fresh process) it gives `logits_fp16`.

The layout follows the official code, not ours: the patch embedding is a Linear over flattened
(channel, row, col) patches with a zero bias, q/k/v are three Linears, attention is an einsum with
pre-scaled queries and the softmax over the key axis of a (N, Lq, Lk, H) tensor. The official
`freeze_fp16` rule: Linears and the class/position embeddings in half, LayerNorm statistics and
weights in fp32 with a half output, attention/softmax/QuickGELU in half, and the tapped blocks'
output, q and k cast to fp32 for the decoder (which stays fp32).

Run as a script (`python evl_fp16_reference.py FIXTURE`) it prints, as JSON, the greatest
differences from the stored official logits of this reference and of clipvideo's fp16 model
(with the official-layout kernels substituted), on whatever kernels this process has.
"""

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

# Keeps oneDNN's fp16 matmuls on the kernels of CPUs without native fp16 (the fixture's family).
# A cap, not a requirement: on CPUs without AVX512-FP16 it changes nothing.
NO_NATIVE_FP16 = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}


def official_layout_attend(self, q, k, v, attn_mask=None):
    """Attention as the official EVL code lays it out: q pre-scaled, (B, Lq, Lk, H) scores with the
    softmax over the key axis, einsum. The same function as SDPA; only fp16 rounding differs."""
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, L, H, d)
    scores = torch.einsum("bqhd,bkhd->bqkh", q / q.shape[-1] ** 0.5, k).softmax(dim=-2)
    return self.out_proj(torch.einsum("bqkh,bkhd->bqhd", scores, v).flatten(-2))


def official_layout_tokens(self, images):
    """Patch embedding as the official Linear over flattened (C, p, p) patches instead of a conv."""
    images = images.to(self.conv1.weight.dtype)
    n, c, h, w = images.shape
    p = self.patch_size
    patches = images.view(n, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).flatten(3).flatten(1, 2)
    x = patches @ self.conv1.weight.flatten(1).t()  # (N, P, C)
    x = torch.cat([self.class_embedding.to(x.dtype).expand(n, 1, -1), x], dim=1)
    return x + self.positional_embedding.to(x.dtype)


def official_layout_taps(weights: dict, video: torch.Tensor, dtype: torch.dtype, heads: int, patch: int,
                         taps: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Video (B, T, 3, H, W) -> per tapped block: out (B, T, L, C), q and k (B, T, H, L, d) in fp32.

    `weights` are an OpenAI CLIP image tower's tensors (`conv1.weight`, `transformer.resblocks.i...`);
    `dtype` is float16 for `freeze_fp16`, float32 for `freeze_fp32`.
    """

    def cast(name):
        return weights[name].to(dtype)

    def norm(x, name):  # statistics in fp32 with fp32 weights, output back in the stream's dtype
        return F.layer_norm(x.float(), x.shape[-1:], weights[name + ".weight"], weights[name + ".bias"], 1e-5).to(x.dtype)

    batch, num_frames = video.shape[:2]
    x = video.flatten(0, 1).to(dtype)  # (N, 3, H, W), frame index b*T + t
    n, c, h, w = x.shape
    patches = x.view(n, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5).flatten(3).flatten(1, 2)
    patch_weight = cast("conv1.weight").flatten(1)  # (C, 3*p*p)
    x = F.linear(patches, patch_weight, torch.zeros(patch_weight.shape[0], dtype=dtype))  # (N, P, C)
    x = torch.cat([cast("class_embedding").expand(n, 1, -1), x], dim=1) + cast("positional_embedding")
    x = norm(x, "ln_pre")
    head_dim = x.shape[-1] // heads
    num_blocks = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("transformer.resblocks."))
    outputs = []
    for i in range(num_blocks):
        prefix = f"transformer.resblocks.{i}."
        y = norm(x, prefix + "ln_1")
        w_q, w_k, w_v = cast(prefix + "attn.in_proj_weight").chunk(3)
        b_q, b_k, b_v = cast(prefix + "attn.in_proj_bias").chunk(3)
        q, k, v = (F.linear(y, wt, bs).unflatten(-1, (heads, head_dim)) for wt, bs in ((w_q, b_q), (w_k, b_k), (w_v, b_v)))
        scores = torch.einsum("nqhd,nkhd->nqkh", q / head_dim**0.5, k).softmax(dim=-2)  # (N, Lq, Lk, H)
        attended = torch.einsum("nqkh,nkhd->nqhd", scores, v).flatten(-2)
        x = x + F.linear(attended, cast(prefix + "attn.out_proj.weight"), cast(prefix + "attn.out_proj.bias"))
        y = F.linear(norm(x, prefix + "ln_2"), cast(prefix + "mlp.c_fc.weight"), cast(prefix + "mlp.c_fc.bias"))
        y = y * torch.sigmoid(1.702 * y)  # QuickGELU, in the stream's dtype
        x = x + F.linear(y, cast(prefix + "mlp.c_proj.weight"), cast(prefix + "mlp.c_proj.bias"))
        if i in taps:
            outputs.append(tuple(t.float().unflatten(0, (batch, num_frames)) for t in (x, q.transpose(1, 2), k.transpose(1, 2))))
    return outputs


def decode(model, taps) -> torch.Tensor:
    """clipvideo's EVL decoder and head (fp32) on given backbone taps -> logits (B, K)."""
    query = model.query_token.expand(taps[0][0].shape[0], 1, -1)
    for block, (features, q, k) in zip(model.decoder, taps):
        query = block(query, features, q, k)
    return model.head(query[:, 0])


def reference_logits(fixture: dict, decoder_model, dtype: torch.dtype, heads: int = 2, patch: int = 16) -> torch.Tensor:
    """Official-layout backbone in `dtype` on the fixture's weights and video, then the fp32 decoder."""
    weights = {k.removeprefix("clip.visual."): v for k, v in fixture.items() if k.startswith("clip.visual.")}
    video = fixture["video"].permute(0, 2, 1, 3, 4)  # official (B, 3, T, H, W) -> (B, T, 3, H, W)
    blocks = len(decoder_model.decoder)
    num_blocks = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("transformer.resblocks."))
    taps = tuple(range(num_blocks - blocks, num_blocks))
    return decode(decoder_model, official_layout_taps(weights, video, dtype, heads, patch, taps))


def main(fixture_path: str) -> None:
    import tempfile

    import pytest

    from clipvideo.clip.attention import Attention
    from clipvideo.clip.vision import VisionTransformer
    from clipvideo.official.evl import load_official_evl

    fixture = torch.load(fixture_path, weights_only=True)
    root = Path(tempfile.mkdtemp())
    torch.save({k.removeprefix("clip."): v for k, v in fixture.items() if k.startswith("clip.")}, root / "clip.pt")
    torch.save({"model": {k.removeprefix("official."): v for k, v in fixture.items() if k.startswith("official.")}}, root / "m.pth")
    with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(Attention, "attend", official_layout_attend)
        patch.setattr(VisionTransformer, "tokens", official_layout_tokens)
        fp32 = load_official_evl(root / "m.pth", backbone=root / "clip.pt", heads=2, decoder_heads=4)
        fp16 = load_official_evl(root / "m.pth", backbone=root / "clip.pt", heads=2, decoder_heads=4, backbone_precision="fp16!")
        reference = reference_logits(fixture, fp32, torch.float16)
        ours = fp16(fixture["video"].permute(0, 2, 1, 3, 4))
    print(json.dumps({
        "reference_vs_official": (reference - fixture["logits_fp16"]).abs().max().item(),
        "ours_vs_official": (ours - fixture["logits_fp16"]).abs().max().item(),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
