"""Fixtures of the FROSTER tests: the official-code tensors and official-format files built from them."""

import json
import lzma
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "froster"


def _full_table(fixture, key: str, dtype) -> torch.Tensor:
    rows = fixture[key]
    table = torch.zeros(49408, rows.shape[1], dtype=dtype)
    table[fixture["token_embedding_rows"]] = rows
    return table


@pytest.fixture(scope="session")
def fixture() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / "froster_tiny.pt", weights_only=True)


@pytest.fixture(scope="session")
def class_texts(fixture) -> list[str]:
    mapping = json.loads("".join(chr(c) for c in fixture["classes"].tolist()))
    return [mapping[str(i)] for i in range(len(mapping))]


def _state(fixture, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors stored under `prefix`, names without it; `NAME@rows` (only the token-embedding
    rows the fixture uses, to keep it small) comes back as the full table NAME."""
    sd = {}
    for key, value in fixture.items():
        if key.startswith(prefix):
            name = key.removeprefix(prefix)
            if name.endswith("@rows"):
                sd[name.removesuffix("@rows")] = _full_table(fixture, key, value.dtype)
            else:
                sd[name] = value
    return sd


@pytest.fixture(scope="session")
def official_state(fixture) -> dict[str, torch.Tensor]:
    """The trained official model's `model_state` without teacher (student `model.*` + projectors)."""
    return _state(fixture, "official.")


@pytest.fixture(scope="session")
def original_state(fixture) -> dict[str, torch.Tensor]:
    """The original CLIP (fp16, OpenAI names) the teacher and weight patching use."""
    return _state(fixture, "original.")


@pytest.fixture(scope="session")
def official_files(official_state, original_state, tmp_path_factory) -> dict[str, Path]:
    """Files laid out like the official ones: the averaged release `{'model_state': ...}`, the epoch
    checkpoint the official training code wrote (teacher `raw_model.*`, optimiser, dumped yacs cfg;
    tests/fixtures/froster/make_fixture.py, stored xz-compressed) and an OpenAI-style original."""
    folder = tmp_path_factory.mktemp("froster_official")
    files = {"averaged": folder / "swa_2_12.pth", "epoch": folder / "checkpoint_epoch_00012.pyth",
             "original": folder / "ViT-tiny.pt"}
    torch.save({"model_state": official_state}, files["averaged"])
    files["epoch"].write_bytes(lzma.decompress((FIXTURES / "checkpoint_epoch_00012.pyth.xz").read_bytes()))
    extras = {"input_resolution": torch.tensor(32), "context_length": torch.tensor(77), "vocab_size": torch.tensor(49408)}
    torch.save({**original_state, **extras}, files["original"])
    return files
