"""Hugging Face XCLIPModel folders load with the same outputs as transformers' own model."""

import json

import pytest
import torch
from xclip_helpers import CLASSES

import clipvideo
from clipvideo.clip import CheckpointError, tokenize
from clipvideo.official.xclip import hf_to_official, load_official_hf_xclip

transformers = pytest.importorskip("transformers")

NAMES = CLASSES + ["playing sports"]


def tiny_hf_config(**top):
    return transformers.XCLIPConfig(
        text_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2),
        vision_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                           image_size=64, patch_size=16, num_frames=4, mit_hidden_size=48,
                           mit_intermediate_size=192, mit_num_attention_heads=2),
        projection_dim=48,  # != the widths, so a missed transpose shows up as a shape error
        prompt_num_attention_heads=3,
        **top,
    )


def randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Every tensor random (LayerNorms around 1), so no mapping mistake hides behind 0/1 inits."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if "norm" in name and name.endswith("weight"):
                param.copy_(1 + 0.2 * noise)
            elif name == "logit_scale":
                param.fill_(3.0)
            elif param.ndim >= 2:
                param.copy_(noise / param.shape[-1] ** 0.5)
            else:
                param.copy_(0.1 * noise)
    return model.eval()


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    return randomise(transformers.XCLIPModel(tiny_hf_config()))


@pytest.fixture(scope="module")
def hf_folder(hf_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf-xclip")
    hf_model.save_pretrained(folder)
    return folder


def hf_logits(model, pixel_values, input_ids):
    with torch.no_grad():
        return model(input_ids=input_ids, pixel_values=pixel_values).logits_per_video


def test_logits_match_transformers(hf_model, hf_folder):
    model = load_official_hf_xclip(hf_folder)
    assert not model.training
    model.set_class_names(NAMES)
    pixel_values = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():
        ours = model(pixel_values)
    reference = hf_logits(hf_model, pixel_values, tokenize(NAMES))
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    assert model.mit.resblocks[0].attn.heads == 2 and model.prompts_generator.decoder[0].cross_attn.heads == 3


def test_transformers_tokenizer_padding_gives_the_same_logits(hf_model, hf_folder):
    """HF's CLIP tokenizer pads with the end-of-text id to the longest prompt; we pad with 0 to 77."""
    tokens = tokenize(NAMES)
    length = int((tokens != 0).sum(dim=1).max())
    hf_ids = tokens[:, :length].masked_fill(tokens[:, :length] == 0, 49407)
    pixel_values = torch.randn(1, 4, 3, 64, 64)
    model = clipvideo.load_official("hf-xclip", hf_folder)
    model.set_class_names(NAMES)
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values), hf_logits(hf_model, pixel_values, hf_ids), atol=1e-5, rtol=0)


def test_pytorch_model_bin_and_gelu(tmp_path):
    torch.manual_seed(1)
    config = tiny_hf_config(prompt_hidden_act="gelu")
    config.text_config.hidden_act = config.vision_config.hidden_act = "gelu"
    reference = randomise(transformers.XCLIPModel(config))
    # The layout of older hub folders: pickled weights with the position_ids buffers inside.
    config.save_pretrained(tmp_path)
    state = reference.state_dict()
    state["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    state["vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    torch.save(state, tmp_path / "pytorch_model.bin")
    model = load_official_hf_xclip(tmp_path / "config.json")  # the config file's folder is used
    assert not model.clip.config.quick_gelu
    model.set_class_names(NAMES)
    pixel_values = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values), hf_logits(reference, pixel_values, tokenize(NAMES)),
                                   atol=1e-5, rtol=0)


def test_every_tensor_is_mapped(hf_model):
    hf = hf_model.state_dict()
    official = hf_to_official(hf)
    assert official["visual.proj"].shape == (64, 48) and official["text_projection"].shape == (64, 48)
    assert official["visual.transformer.resblocks.0.message_attn.in_proj_weight"].shape == (192, 64)
    assert torch.equal(official["visual.transformer.resblocks.1.attn.in_proj_bias"][64:128],
                       hf["vision_model.encoder.layers.1.self_attn.k_proj.bias"])
    attention_modules = 2 + 2 * 2 + 1  # text layers, vision layers (self + message), MIT
    assert len(official) == len(hf) - 4 * attention_modules  # 6 q/k/v tensors packed into 2 each
    with pytest.raises(CheckpointError, match="not part of an XCLIPModel"):
        hf_to_official({**hf, "classifier.weight": torch.zeros(1)})
    del hf["mit.encoder.layers.0.self_attn.v_proj.weight"]
    with pytest.raises(CheckpointError, match=r"only \['k', 'q'\] of the q/k/v projections"):
        hf_to_official(hf)


def test_folder_errors_are_one_line(tmp_path, hf_folder):
    with pytest.raises(CheckpointError, match="no config.json"):
        load_official_hf_xclip(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "xclip"}))
    with pytest.raises(CheckpointError, match="no model.safetensors or pytorch_model.bin"):
        load_official_hf_xclip(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(CheckpointError, match="model_type 'clip', expected 'xclip'"):
        load_official_hf_xclip(tmp_path)
    with pytest.raises(CheckpointError, match="no such folder"):
        load_official_hf_xclip(tmp_path / "absent")
