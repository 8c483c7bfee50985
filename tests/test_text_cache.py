"""The class-embedding cache (clipvideo/clip/text_cache.py): in memory per model, on disk across
models and processes. Every test points the disk store at its own folder."""

import logging

import pytest
import torch

from clipvideo.clip import text_cache
from clipvideo.clip.text_cache import encode_by_length, evict, tensor_digest, text_weights
from clipvideo.methods import froster, xclip
from clipvideo.methods.base import BackboneConfig

CLASSES = ["Brush hair: A person is using a brush to style their hair", "Run: someone runs fast", "jump"]
OTHER = ["Swim: moving through water", "Cartwheel"]


@pytest.fixture
def store(tmp_path, monkeypatch):
    folder = tmp_path / "text_embeddings"
    monkeypatch.setenv("CLIPVIDEO_TEXT_CACHE", str(folder))
    monkeypatch.delenv("CLIPVIDEO_TEXT_CACHE_MB", raising=False)
    return folder


def tiny_froster(classes=CLASSES, seed=0):
    torch.manual_seed(seed)
    config = froster.Config(backbone=BackboneConfig(arch="tiny"), num_frames=4, distillation=False)
    return froster.build(config, len(classes), classes).eval()


def tiny_xclip(**overrides):
    config = xclip.Config(backbone=BackboneConfig(arch="tiny"), num_frames=4, mit_heads=2, prompt_heads=2,
                          **overrides)
    return xclip.build(config, 3, ["moving left", "rotating clockwise", "a dog"]).eval()


def count_text_encodes(model) -> list[int]:
    """Spy on the model's text encoder: the list grows by the prompt count of every call."""
    calls = []
    encode = model.clip.encode_text
    model.clip.encode_text = lambda tokens: calls.append(len(tokens)) or encode(tokens)
    return calls


def stored(folder):
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


def test_memory_entries_follow_weights_vocabulary_and_dtype(store):
    model = tiny_froster()
    calls = count_text_encodes(model)
    with torch.no_grad():
        first = model.class_embeddings()
        assert len(calls) == 1 and model.class_embeddings() is first
        model.clip.text_projection.add_(0.1 * torch.randn_like(model.clip.text_projection))  # a weight change, as an optimiser step makes
        changed = model.class_embeddings()
        assert len(calls) == 2 and not torch.allclose(changed, first)
        model.set_classes(OTHER)
        assert model.class_embeddings().shape[0] == 2 and len(calls) == 3
        model.set_classes(CLASSES)  # back to the first vocabulary: still in memory
        assert model.class_embeddings() is changed and len(calls) == 3
        # fp32 and bf16 each encode once, then alternating calls only hit.
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model.class_embeddings()
        assert len(calls) == 4
        for _ in range(3):
            assert model.class_embeddings() is changed
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert model.class_embeddings() is bf16
        assert len(calls) == 4


def test_memory_is_bounded_least_recently_used_first(store, monkeypatch):
    monkeypatch.setenv("CLIPVIDEO_TEXT_CACHE", "0")
    model = tiny_froster()
    calls = count_text_encodes(model)
    vocabularies = [[f"class {i}", f"other {i}"] for i in range(text_cache.MEMORY_ENTRIES + 1)]
    with torch.no_grad():
        for vocabulary in vocabularies:
            model.set_classes(vocabulary)
            model.class_embeddings()
        assert len(model.class_cache.memory) == text_cache.MEMORY_ENTRIES
        model.set_classes(vocabularies[-1])
        model.class_embeddings()
        assert len(calls) == len(vocabularies)  # the newest is kept
        model.set_classes(vocabularies[0])
        model.class_embeddings()
        assert len(calls) == len(vocabularies) + 1  # the oldest was dropped


def test_a_new_prompt_template_re_encodes(store):
    model = tiny_xclip()
    calls = count_text_encodes(model)
    with torch.no_grad():
        before = model.class_embeddings()
        model.config.template = "a video of {}."
        model.vocabulary_changed()
        after = model.class_embeddings()
    assert len(calls) == 2 and not torch.allclose(before, after)


@pytest.mark.parametrize("method", ["froster", "xclip"])
def test_a_second_model_with_the_same_weights_reads_the_disk(store, method):
    first = tiny_froster() if method == "froster" else tiny_xclip()
    with torch.no_grad():
        encoded = first.class_embeddings()
    assert len(stored(store)) == 1
    second = tiny_froster() if method == "froster" else tiny_xclip()
    second.load_state_dict(first.state_dict())
    calls = count_text_encodes(second)
    with torch.no_grad():
        torch.testing.assert_close(second.class_embeddings(), encoded, rtol=0, atol=0)
    assert calls == []


def test_other_weights_dtype_or_vocabulary_are_other_disk_entries(store):
    with torch.no_grad():
        tiny_froster(seed=0).class_embeddings()
        other = tiny_froster(seed=1)  # other random weights
        calls = count_text_encodes(other)
        other.class_embeddings()
        assert len(calls) == 1 and len(stored(store)) == 2
        with torch.autocast("cpu", dtype=torch.bfloat16):
            other.class_embeddings()
        other.set_classes(OTHER)
        other.class_embeddings()
    assert len(calls) == 3 and len(stored(store)) == 4


def test_the_same_tensors_in_another_architecture_are_another_disk_entry(store):
    """Head counts are not in the tensors' shapes: the key holds the CLIP architecture too."""
    first = tiny_froster()
    with torch.no_grad():
        encoded = first.class_embeddings()
    heads = 1 if first.clip.config.text_heads != 1 else 2
    config = froster.Config(backbone=BackboneConfig(arch="tiny", text_heads=heads), num_frames=4, distillation=False)
    other = froster.build(config, len(CLASSES), CLASSES).eval()
    other.load_state_dict(first.state_dict())
    calls = count_text_encodes(other)
    with torch.no_grad():
        assert not torch.allclose(other.class_embeddings(), encoded)
    assert len(calls) == 1 and len(stored(store)) == 2


@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong shape"])
def test_a_damaged_file_is_a_miss_that_is_logged_and_rewritten(store, damage, caplog):
    with torch.no_grad():
        encoded = tiny_froster().class_embeddings()
    (path,) = stored(store)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a tensor file")
    else:
        text_cache.save_file({"embeddings": torch.zeros(7, 4)}, path)
    model = tiny_froster()
    calls = count_text_encodes(model)
    with caplog.at_level(logging.WARNING), torch.no_grad():
        torch.testing.assert_close(model.class_embeddings(), encoded)
    assert len(calls) == 1
    assert "damaged class-embedding cache file" in caplog.text and str(path) in caplog.text
    torch.testing.assert_close(text_cache.load_file(path)["embeddings"], encoded)  # replaced


def test_a_deleted_folder_is_a_miss(store):
    import shutil

    with torch.no_grad():
        tiny_froster().class_embeddings()
    shutil.rmtree(store)
    model = tiny_froster()
    calls = count_text_encodes(model)
    with torch.no_grad():
        model.class_embeddings()
    assert len(calls) == 1 and len(stored(store)) == 1


def test_the_size_bound_evicts_the_least_recently_used(store, monkeypatch):
    model = tiny_froster()
    with torch.no_grad():
        model.class_embeddings()
        (first,) = stored(store)
        size = first.stat().st_size
        monkeypatch.setenv("CLIPVIDEO_TEXT_CACHE_MB", str(2.5 * size / 2**20))  # room for two files
        for vocabulary in (["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i"]):  # same size as the first
            model.set_classes(vocabulary)
            model.class_embeddings()
    files = stored(store)
    assert len(files) == 2 and first not in files
    assert sum(f.stat().st_size for f in files) <= 2.5 * size


def test_evict_keeps_the_folder_under_the_bound(tmp_path):
    for i in range(5):
        (tmp_path / f"{i}.safetensors").write_bytes(b"x" * 100)
    evict(tmp_path, 250)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


def test_the_disk_cache_can_be_turned_off(store, monkeypatch):
    monkeypatch.setenv("CLIPVIDEO_TEXT_CACHE", "0")
    with torch.no_grad():
        tiny_froster().class_embeddings()
        model = tiny_froster()
        calls = count_text_encodes(model)
        model.class_embeddings()
    assert len(calls) == 1 and not store.exists()
    with pytest.raises(ValueError, match="CLIPVIDEO_TEXT_CACHE_MB='lots'"):
        monkeypatch.setenv("CLIPVIDEO_TEXT_CACHE", str(store))
        monkeypatch.setenv("CLIPVIDEO_TEXT_CACHE_MB", "lots")
        text_cache.max_cache_bytes()


def test_training_never_reads_or_writes_the_disk(store, monkeypatch):
    model = tiny_froster()
    with torch.no_grad():
        model.class_embeddings()  # an eval entry on disk for these very weights
    reads = []
    monkeypatch.setattr(text_cache, "load_file", lambda path: reads.append(path))
    fresh = tiny_froster()
    fresh.load_state_dict(model.state_dict())
    fresh.train()
    fresh.loss(torch.randn(1, 4, 3, 64, 64), torch.tensor([0]))["loss"].backward()
    with torch.no_grad():  # train mode without gradients (a validation pass left in train mode)
        fresh.class_embeddings()
    fresh.eval()
    embeddings = fresh.class_embeddings()  # eval with gradients: memory only
    assert reads == [] and len(stored(store)) == 1
    # X-CLIP with a trained text tower: encoded with gradients, never cached.
    trained = tiny_xclip(train_text=True).train()
    assert trained.class_embeddings().requires_grad and reads == [] and not trained.class_cache.memory
    assert not embeddings.requires_grad


def test_encoding_by_length_equals_encoding_at_once():
    model = tiny_froster()
    tokens = model.text_tokens.flatten(0, 1)  # (P*K, L), mixed lengths
    with torch.no_grad():
        at_once = model.clip.encode_text(tokens)
        torch.testing.assert_close(encode_by_length(model.clip.encode_text, tokens, batch=7), at_once,
                                   rtol=1e-5, atol=1e-5)


def test_the_weights_digest_follows_every_byte_and_dtype():
    weights = text_weights(tiny_froster().clip)
    digest = tensor_digest(weights)
    assert tensor_digest(weights) == digest
    assert tensor_digest([w.to(torch.bfloat16) for w in weights]) != digest
    changed = [w.clone() for w in weights]
    changed[-1].view(-1)[0] += 1e-3
    assert tensor_digest(changed) != digest


@pytest.mark.parametrize("method", ["frozen", "text4vis"])
def test_methods_whose_text_never_trains_read_the_disk_when_classes_are_set(store, method):
    from clipvideo.methods import frozen, text4vis

    module = {"frozen": frozen, "text4vis": text4vis}[method]

    def make(names):
        torch.manual_seed(0)
        return module.build(module.Config(backbone=BackboneConfig(arch="tiny"), num_frames=4), 0, names)

    encoded = make(OTHER).class_embeddings().clone()
    assert len(stored(store)) == 1
    second = make(None)
    calls = count_text_encodes(second)
    second.set_classes(OTHER)
    assert calls == []
    torch.testing.assert_close(second.class_embeddings(), encoded, rtol=0, atol=0)


def test_the_benchmark_runs_at_tiny_size(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "text_cache.py"
    result = subprocess.run([sys.executable, str(script), "--arch", "tiny", "--classes", "3", "--threads", "1",
                             "--alternations", "2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| second process, fp32 (disk hit, digest included) |" in result.stdout
    assert "0 prompts encoded" in result.stdout and "load average" in result.stdout


def test_export_freezes_the_stored_classifier_without_encoding(store):
    first = tiny_froster()
    with torch.no_grad():
        encoded = first.class_embeddings()
    exported = tiny_froster()
    exported.load_state_dict(first.state_dict())
    calls = count_text_encodes(exported)
    exported.freeze_classes()  # what `clipvideo export` does, in eval mode
    assert calls == [] and exported.clip.transformer is None
    torch.testing.assert_close(exported.class_embeddings(), encoded, rtol=0, atol=0)
