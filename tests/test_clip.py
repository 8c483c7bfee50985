"""The CLIP backbone: parity with open_clip, weight formats, per-block outputs, bad files."""

import warnings
import zipfile

import pytest
import torch
from open_clip.model import CLIP as OpenCLIP
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from clipvideo.clip import (
    CLIP,
    CheckpointError,
    ResidualAttentionBlock,
    create_clip,
    get_architecture,
    load_clip,
    read_state_dict,
    tokenize,
)

PROMPTS = ["a video of a person moving left.", "rotating clockwise", "a dog"]


def make_open_clip(width=64, layers=2, heads=2, text_width=64, text_heads=2, embed=48, image=64, patch=16):
    torch.manual_seed(0)
    model = OpenCLIP(
        embed,
        CLIPVisionCfg(layers=layers, width=width, head_width=width // heads, patch_size=patch, image_size=image),
        CLIPTextCfg(context_length=77, vocab_size=49408, width=text_width, heads=text_heads, layers=layers),
        quick_gelu=True,
    )
    # Random LayerNorm affine parameters so that loading mistakes show up in the outputs.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".weight", ".bias")) and ("ln_" in name):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def save_state_dict(model, path):
    torch.save({k: v for k, v in model.state_dict().items() if k != "attn_mask"}, path)
    return path


@pytest.fixture(scope="module")
def reference():
    return make_open_clip()


def test_towers_match_open_clip(reference, tmp_path):
    ours = load_clip(save_state_dict(reference, tmp_path / "clip.pt"), heads=2, text_heads=2).eval()
    images = torch.randn(3, 3, 64, 64)
    tokens = tokenize(PROMPTS)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(images), reference.encode_image(images), atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.encode_text(tokens), reference.encode_text(tokens), atol=1e-5, rtol=0)
    assert torch.equal(ours.logit_scale, reference.logit_scale)


def test_state_dict_keys_are_openai_names(reference):
    ours = CLIP(get_architecture("tiny", embed_dim=48, vision_heads=2))
    expected = {k for k in reference.state_dict() if k != "attn_mask"}
    assert set(ours.state_dict()) == expected
    ours.load_state_dict({k: v for k, v in reference.state_dict().items() if k != "attn_mask"}, strict=True)


def test_torchscript_archive_in_openai_format_loads(reference, tmp_path):
    scripted_source = make_open_clip().half()
    # OpenAI's archives carry these three buffers next to the weights.
    del scripted_source.context_length, scripted_source.vocab_size  # plain ints in open_clip
    scripted_source.register_buffer("input_resolution", torch.tensor(64))
    scripted_source.register_buffer("context_length", torch.tensor(77))
    scripted_source.register_buffer("vocab_size", torch.tensor(49408))
    path = tmp_path / "ViT-tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(scripted_source).save(str(path))
    ours = load_clip(path, heads=2, text_heads=2).eval()
    fp32_reference = make_open_clip()
    fp32_reference.load_state_dict({k: v.float() for k, v in scripted_source.state_dict().items()
                                    if k not in ("input_resolution", "context_length", "vocab_size")})
    images, tokens = torch.randn(2, 3, 64, 64), tokenize(PROMPTS)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(images), fp32_reference.encode_image(images), atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.encode_text(tokens), fp32_reference.encode_text(tokens), atol=1e-5, rtol=0)


def test_safetensors_and_training_checkpoint_wrappers(reference, tmp_path):
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in reference.state_dict().items() if k != "attn_mask"}
    save_file(sd, str(tmp_path / "clip.safetensors"))
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "train.pt")
    for name in ("clip.safetensors", "train.pt"):
        loaded = read_state_dict(tmp_path / name)
        assert set(loaded) == set(sd)
        assert all(torch.equal(loaded[k], sd[k]) for k in sd)


def test_architecture_read_from_shapes(tmp_path):
    source = create_clip(get_architecture("tiny", vision_width=128, vision_layers=3, vision_patch_size=8,
                                          image_resolution=48, embed_dim=32, text_width=128, text_layers=1))
    path = tmp_path / "clip.pt"
    torch.save(source.state_dict(), path)
    config = load_clip(path).config
    assert (config.vision_width, config.vision_layers, config.vision_patch_size) == (128, 3, 8)
    assert (config.image_resolution, config.embed_dim, config.text_layers) == (48, 32, 1)
    assert (config.vision_heads, config.text_heads) == (2, 2)  # width // 64
    assert load_clip(path, heads=4, text_heads=8).config.vision_heads == 4
    with pytest.raises(CheckpointError, match="heads=3 does not divide"):
        load_clip(path, heads=3)


def test_vision_only_state_dict_and_without_text(reference, tmp_path):
    visual = {k[len("visual."):]: v for k, v in reference.state_dict().items() if k.startswith("visual.")}
    torch.save(visual, tmp_path / "visual.pt")
    model = load_clip(tmp_path / "visual.pt", heads=2, with_text=False).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(images), reference.encode_image(images), atol=1e-5, rtol=0)
    with pytest.raises(CheckpointError, match="no text tower"):
        load_clip(tmp_path / "visual.pt", heads=2)


def test_forward_intermediates_match_hooks(reference, tmp_path):
    model = load_clip(save_state_dict(reference, tmp_path / "clip.pt"), heads=2, text_heads=2).eval()
    images = torch.randn(2, 3, 64, 64)
    seen = {}

    def keep(name):
        def hook(module, inputs, output):
            seen[name] = output
        return hook

    for i, block in enumerate(model.visual.transformer.resblocks):
        block.ln_1.register_forward_hook(keep(f"ln_1.{i}"))
        block.register_forward_hook(keep(f"out.{i}"))
    with torch.no_grad():
        plain = model.visual(images)
        result = model.visual.forward_intermediates(images, indices=2)
    torch.testing.assert_close(result.features, plain, atol=0, rtol=0)
    assert len(result.blocks) == 2
    for i, tap in enumerate(result.blocks):
        block = model.visual.transformer.resblocks[i]
        qkv = torch.nn.functional.linear(seen[f"ln_1.{i}"], block.attn.in_proj_weight, block.attn.in_proj_bias)
        q, k, v = qkv.view(2, 17, 3, 2, 32).permute(2, 0, 3, 1, 4)
        torch.testing.assert_close(tap.q, q, atol=1e-6, rtol=0)
        torch.testing.assert_close(tap.k, k, atol=1e-6, rtol=0)
        torch.testing.assert_close(tap.v, v, atol=1e-6, rtol=0)
        torch.testing.assert_close(tap.out, seen[f"out.{i}"], atol=1e-6, rtol=0)
    early = model.visual.forward_intermediates(images, indices=[0], stop_early=True)
    torch.testing.assert_close(early.tokens, result.blocks[0].out, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="out of range"):
        model.visual.forward_intermediates(images, indices=[5])


def test_positional_embedding_resized_for_other_resolutions(reference, tmp_path):
    path = save_state_dict(reference, tmp_path / "clip.pt")
    model = load_clip(path, heads=2, text_heads=2).eval()
    resized = load_clip(path, heads=2, text_heads=2, image_resolution=96).eval()
    assert resized.visual.positional_embedding.shape == (37, 64)
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(images), resized.encode_image(images), atol=1e-5, rtol=0)
        same = model.encode_image(torch.randn(1, 3, 64, 64))
    assert same.shape == (1, 48)


def test_precisions_and_grad_checkpointing(reference, tmp_path):
    model = load_clip(save_state_dict(reference, tmp_path / "clip.pt"), heads=2, text_heads=2)
    images = torch.randn(2, 3, 64, 64)
    reference_out = model.encode_image(images)
    reference_out.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model.encode_image(images).sum().backward()
    for name, grad in grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, atol=1e-6, rtol=1e-5)
    model.set_grad_checkpointing(False)
    with torch.no_grad():
        for dtype in (torch.bfloat16, torch.float16):
            low = load_clip(tmp_path / "clip.pt", heads=2, text_heads=2).to(dtype)
            out = low.encode_image(images.to(dtype))
            assert out.dtype == dtype
            torch.testing.assert_close(out.float(), reference_out, atol=0.1, rtol=0.05)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert model.encode_text(tokenize(PROMPTS)).shape == (3, 48)


def test_method_block_extension_point(reference, tmp_path):
    class ScaledBlock(ResidualAttentionBlock):
        """A toy method block: one new parameter, reuses the public steps."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.gate = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, attn_mask=None, num_frames=1):
            x = x + self.attention(x, attn_mask) * (1 + self.gate * num_frames)
            return x + self.feed_forward(x)

    path = save_state_dict(reference, tmp_path / "clip.pt")
    model = load_clip(path, heads=2, text_heads=2, vision_block=ScaledBlock, new_keys=lambda k: k.endswith(".gate")).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.visual(images, num_frames=2), reference.encode_image(images), atol=1e-5, rtol=0)
        model.visual.transformer.resblocks[0].gate.fill_(1.0)
        assert not torch.allclose(model.visual(images, num_frames=2), reference.encode_image(images), atol=1e-3)
    with pytest.raises(CheckpointError, match="missing"):
        load_clip(path, heads=2, text_heads=2, vision_block=ScaledBlock)


def one_line(error: Exception) -> str:
    message = str(error)
    assert "\n" not in message
    return message


def test_bad_files_give_one_line_errors(reference, tmp_path):
    text_file = tmp_path / "notes.pt"
    text_file.write_text("these are not weights\n")
    with pytest.raises(CheckpointError) as error:
        load_clip(text_file)
    assert str(text_file) in one_line(error.value) and "expected" in str(error.value)

    good = save_state_dict(reference, tmp_path / "clip.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError) as error:
        load_clip(truncated)
    assert str(truncated) in one_line(error.value) and "truncated" in str(error.value)

    other = tmp_path / "resnet.pt"
    torch.save({"layer1.0.conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8)}, other)
    with pytest.raises(CheckpointError) as error:
        load_clip(other)
    assert str(other) in one_line(error.value) and "not a CLIP" in str(error.value)

    with pytest.raises(CheckpointError, match="no such file"):
        load_clip(tmp_path / "missing.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_clip(tmp_path / "empty.pt")

    # A pickle that would run code is refused, not executed.
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"weights": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as error:
        load_clip(tmp_path / "evil.pt")
    assert "evil.pt" in one_line(error.value)

    zipped = tmp_path / "archive.pt"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("x/readme.txt", "hello")
    with pytest.raises(CheckpointError):
        load_clip(zipped)


def test_tokenizer_matches_open_clip_and_truncates_on_request():
    import open_clip

    torch.testing.assert_close(tokenize(PROMPTS), open_clip.get_tokenizer("ViT-B-32")(PROMPTS))
    long_text = "very " * 100
    with pytest.raises(ValueError, match="truncate=True"):
        tokenize(long_text)
    tokens = tokenize(long_text, truncate=True)
    assert tokens.shape == (1, 77) and tokens[0, -1].item() == 49407 and tokens[0, 0].item() == 49406
