"""Session fixtures of the X-CLIP tests: the official fixture tensors and an official-format file."""

import sys
import types
from pathlib import Path

import pytest
import torch
from xclip_helpers import FIXTURES


@pytest.fixture(scope="session")
def fixture() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / "xclip_tiny.pt", weights_only=True)


@pytest.fixture(scope="session")
def official_state_dict(fixture) -> dict[str, torch.Tensor]:
    """The official model's state dict, in the official key order, with the full token table."""
    sd = {k.removeprefix("official."): v for k, v in fixture.items() if k.startswith("official.")}
    table = torch.zeros(49408, 64)
    table[fixture["token_embedding_rows"]] = fixture["token_embedding_values"]
    sd["token_embedding.weight"] = table
    return sd


@pytest.fixture(scope="session")
def official_checkpoint(official_state_dict, tmp_path_factory) -> Path:
    """A file laid out like the official `epoch_saving` output, including a pickled yacs CfgNode.

    yacs is not installed: a stand-in class with yacs' module path is registered only while
    saving, so the file names `yacs.config.CfgNode` exactly as official files do.
    """
    module = types.ModuleType("yacs.config")

    class CfgNode(dict):
        pass

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    module.CfgNode = CfgNode
    config = CfgNode(DATA=CfgNode(NUM_FRAMES=4, NUM_CLASSES=3), MODEL=CfgNode(ARCH="tiny", FIX_TEXT=True))
    config.__dict__["__immutable__"] = True
    path = tmp_path_factory.mktemp("official") / "ckpt_epoch_0.pth"
    saved = {name: sys.modules.get(name) for name in ("yacs", "yacs.config")}
    sys.modules["yacs"] = types.ModuleType("yacs")
    sys.modules["yacs.config"] = module
    try:
        checkpoint = {"model": official_state_dict, "optimizer": {"state": {}, "param_groups": []},
                      "lr_scheduler": {"t_initial": 300}, "max_accuracy": 12.5, "epoch": 0, "config": config}
        torch.save(checkpoint, path)
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value
    return path
