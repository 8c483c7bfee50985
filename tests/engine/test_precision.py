"""fp16 on CPUs without native fp16 runs as bf16 (with a notice) unless forced; auto reads the CPU."""

import logging

import pytest
import torch

from clipvideo.clip import cpu_precision
from clipvideo.clip.cpu_precision import native_precisions
from clipvideo.engine.precision import resolve_precision

CPU = torch.device("cpu")


@pytest.fixture
def cpu_without_fp16(monkeypatch):
    """This machine's kind of CPU (AMD Zen 4): native bf16 (AVX512-BF16), no native fp16."""
    monkeypatch.setattr(cpu_precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512bw", "avx512_bf16"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(logging.getLogger("clipvideo"), "propagate", True)  # fit() turns it off; caplog listens at the root


def test_native_precisions_from_cpu_flags():
    assert native_precisions({"avx2", "fma"}) == set()
    assert native_precisions({"avx512f", "avx512_bf16"}) == {"bf16"}  # Zen 4, Cooper Lake
    assert native_precisions({"avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16"}) == {"bf16", "fp16"}  # Sapphire Rapids
    assert native_precisions({"fp", "asimd", "asimdhp", "bf16"}) == {"bf16", "fp16"}  # Arm Neoverse V1


def test_fp16_on_a_cpu_without_it_runs_as_bf16_with_one_notice(cpu_without_fp16, caplog):
    with caplog.at_level(logging.WARNING, logger="clipvideo"):
        assert resolve_precision("fp16", CPU, "test.precision") == "bf16"
    (record,) = caplog.records
    assert record.getMessage().startswith("test.precision: this CPU has no native fp16")
    assert "fp16!" in record.getMessage() and "\n" not in record.getMessage()
    caplog.clear()
    assert resolve_precision("fp16!", CPU) == "fp16" and not caplog.records  # forced: no notice
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("fp16", torch.device("cuda")) == "fp16"  # GPUs have fp16
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("half", CPU)


def test_cpu_without_bf16_or_fp16_gets_fp32(monkeypatch):
    monkeypatch.setattr(cpu_precision, "cpu_flags", lambda: frozenset({"avx2"}))
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("fp16", CPU) == "fp32"


def test_evl_fp16_backbone_becomes_bf16_on_such_a_cpu_unless_forced(cpu_without_fp16):
    from clipvideo.methods.base import BackboneConfig
    from clipvideo.methods.evl import Config, build

    def backbone_dtype(value):
        config = Config(backbone=BackboneConfig(arch="tiny"), num_frames=4, decoder_layers=2, decoder_heads=2,
                        backbone_precision=value)
        return build(config, num_classes=3).clip.visual.conv1.weight.dtype

    assert backbone_dtype("fp16") == torch.bfloat16
    assert backbone_dtype("fp16!") == torch.float16
    assert backbone_dtype("fp32") == torch.float32
