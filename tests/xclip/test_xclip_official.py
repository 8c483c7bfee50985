"""Official X-CLIP checkpoints: logits equal the official code's, restricted reading of yacs files."""

import importlib.util
import pickle
import zipfile

import pytest
import torch
from xclip_helpers import CLASSES, FIXTURES

import clipvideo
from clipvideo.clip import CheckpointError
from clipvideo.official.xclip import PickledObject, load_official_xclip, plain, read_checkpoint

# Head counts of the three fixture runs (same weights): see tests/fixtures/xclip/README.md.
HEADS = {
    "logits": dict(heads=2, text_heads=2),
    "logits_all_heads2": dict(heads=2, text_heads=2, mit_heads=2, prompt_heads=2),
    "logits_default_heads": {},  # the official width // 64 rule: 1 head everywhere
}


@pytest.mark.parametrize("variant", list(HEADS))
def test_logits_match_official_code(variant, official_checkpoint, fixture):
    model = load_official_xclip(official_checkpoint, **HEADS[variant])
    assert not model.training
    model.set_class_names(CLASSES)
    length = model.text_tokens.shape[1]  # up to the longest prompt's end-of-text token
    assert torch.equal(model.text_tokens, fixture["text_tokens"][:, :length])
    assert length < 77 and not fixture["text_tokens"][:, length:].any()
    with torch.no_grad():
        logits = model(fixture["video"])
    torch.testing.assert_close(logits, fixture[variant], atol=1e-5, rtol=0)


def test_intermediates_match_official_code(official_checkpoint, fixture):
    model = clipvideo.load_official("xclip", official_checkpoint, heads=2, text_heads=2)
    model.set_class_names(CLASSES)
    with torch.no_grad():
        frames, context = model.encode_frames(fixture["video"])
        text = model.class_embeddings()
        prompts = model.prompts_generator(text.expand(2, -1, -1), context)
        video = model.mit(frames)
    for ours, key in ((frames, "frame_features"), (context, "prompt_visual_context"), (text, "text_features"),
                      (prompts, "prompts_out"), (video, "video_features")):
        torch.testing.assert_close(ours, fixture[key], atol=1e-5, rtol=0, msg=key)


def test_shapes_give_the_architecture(official_checkpoint):
    model = load_official_xclip(official_checkpoint, heads=2, text_heads=2)
    arch = model.clip.config
    assert (arch.vision_width, arch.vision_layers, arch.vision_patch_size, arch.image_resolution) == (64, 2, 16, 64)
    assert (arch.embed_dim, arch.text_width, arch.text_layers, arch.vision_heads, arch.text_heads) == (64, 64, 2, 2, 2)
    assert (model.config.num_frames, model.config.mit_layers, model.config.prompt_layers) == (4, 1, 2)
    assert model.mit.resblocks[0].attn.heads == 1  # embed_dim // 64
    assert model.clip.visual.transformer.resblocks[0].message_attn.heads == 2


def test_bare_state_dict_loads_too(official_state_dict, fixture, tmp_path):
    path = tmp_path / "bare.pth"
    torch.save({f"module.{k}": v.half() for k, v in official_state_dict.items()}, path)  # DDP prefix, fp16
    model = load_official_xclip(path, heads=2, text_heads=2)
    model.set_class_names(CLASSES)
    with torch.no_grad():
        torch.testing.assert_close(model(fixture["video"]), fixture["logits"], atol=0.05, rtol=0)


def test_other_frame_counts_interpolate_with_a_warning(official_checkpoint, fixture):
    with pytest.warns(UserWarning, match="trained for 4 frames.*8 frames"):
        model = load_official_xclip(official_checkpoint, heads=2, text_heads=2, num_frames=8)
    assert model.mit.positional_embedding.shape == (1, 8, 64)
    model.set_class_names(CLASSES)
    video = fixture["video"].repeat_interleave(2, dim=1)  # (2, 8, 3, 64, 64)
    with torch.no_grad():
        assert model(video).shape == (2, 3)
    # A model loaded at its trained T warns when a video with another T arrives, and still runs.
    model = load_official_xclip(official_checkpoint, heads=2, text_heads=2)
    model.set_class_names(CLASSES)
    with pytest.warns(UserWarning, match="trained for 4 frames.*6 frames"), torch.no_grad():
        assert model(fixture["video"][:, [0, 1, 1, 2, 3, 3]]).shape == (2, 3)


def test_restricted_reader_reads_the_real_official_file_without_yacs():
    assert importlib.util.find_spec("yacs") is None, "yacs must not be importable for this test to mean anything"
    checkpoint = read_checkpoint(FIXTURES / "official_ckpt_tiny.pth")
    assert list(checkpoint) == ["model", "optimizer", "lr_scheduler", "max_accuracy", "epoch", "config"]
    config = checkpoint["config"]
    assert isinstance(config, PickledObject) and config.pickled_class == "yacs.config.CfgNode"
    assert config.state["__immutable__"] is True
    assert plain(config)["DATA"]["NUM_FRAMES"] == 4 and plain(config)["MODEL"]["ARCH"] == "ViT-B/32"
    assert len(checkpoint["model"]) == 11 and checkpoint["model"]["logit_scale"].shape == ()
    assert len(checkpoint["optimizer"]["param_groups"]) == 8
    with pytest.raises(pickle.UnpicklingError):
        torch.load(FIXTURES / "official_ckpt_tiny.pth", weights_only=True)


def test_partial_official_file_is_a_clear_error():
    with pytest.raises(CheckpointError, match=r"official_ckpt_tiny.pth: not an X-CLIP checkpoint: 11 tensors"):
        load_official_xclip(FIXTURES / "official_ckpt_tiny.pth")


class Exploit:
    def __reduce__(self):
        import os

        return os.system, ("touch /tmp/clipvideo_xclip_exploit",)


def test_pickled_code_is_never_run(tmp_path, official_state_dict):
    import os

    marker = "/tmp/clipvideo_xclip_exploit"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.pth"
    torch.save({"model": official_state_dict, "config": Exploit()}, path)
    checkpoint = read_checkpoint(path)
    assert not os.path.exists(marker)
    assert checkpoint["config"].pickled_class in ("posix.system", "os.system", "nt.system")
    assert checkpoint["config"].args == ("touch /tmp/clipvideo_xclip_exploit",)
    load_official_xclip(path, heads=2, text_heads=2)  # the weights are still usable
    assert not os.path.exists(marker)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", r"missing\.pth: no such file"),
        ("text", r"text\.pth: .*(not a loadable|cannot read)"),
        ("truncated", r"truncated\.pth: (cannot read|not a torch.save)"),
    ],
)
def test_bad_files_raise_one_line_errors(kind, message, tmp_path, official_checkpoint):
    path = tmp_path / f"{kind}.pth"
    if kind == "text":
        path.write_text("not a checkpoint")
    elif kind == "truncated":
        path.write_bytes(official_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=message) as error:
        load_official_xclip(path)
    assert "\n" not in str(error.value)


def test_head_count_that_does_not_divide_is_an_error(official_checkpoint):
    with pytest.raises(CheckpointError, match="mit_heads=3 does not divide the embedding width 64"):
        load_official_xclip(official_checkpoint, mit_heads=3)
    with pytest.raises(CheckpointError, match="heads=3 does not divide the width 64"):
        load_official_xclip(official_checkpoint, heads=3)


def test_storages_of_the_official_file_are_read_from_the_archive(official_checkpoint):
    with zipfile.ZipFile(official_checkpoint) as archive:
        assert any("/data/" in name for name in archive.namelist())
    checkpoint = read_checkpoint(official_checkpoint)
    assert checkpoint["max_accuracy"] == 12.5 and checkpoint["epoch"] == 0
    assert plain(checkpoint["config"]) == {"DATA": {"NUM_FRAMES": 4, "NUM_CLASSES": 3},
                                           "MODEL": {"ARCH": "tiny", "FIX_TEXT": True}}
