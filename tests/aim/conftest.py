"""Session fixtures of the AIM tests: the official fixture files (tests/fixtures/aim/README.md)."""

from pathlib import Path

import pytest
import torch

from aim_helpers import FIXTURES


@pytest.fixture(scope="session")
def official_io() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / "io_tiny.pt", weights_only=True)


@pytest.fixture(params=["k400", "ssv2"])
def variant(request) -> str:
    return request.param


@pytest.fixture
def official_file(variant) -> Path:
    return FIXTURES / f"official_{variant}_tiny.pth"


@pytest.fixture
def official_video(official_io, variant) -> torch.Tensor:
    """The fixture clip in our layout (B, T, 3, H, W); the official model takes (B, 3, T, H, W)."""
    return official_io[f"{variant}.video"].transpose(1, 2)
