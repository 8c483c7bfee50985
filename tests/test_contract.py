"""The class vocabulary of the model contract (docs/contract.md): names plus descriptions, kept."""

import pytest
import torch

from clipvideo.methods import METHODS
from clipvideo.methods.base import BackboneConfig, ClassVocabulary, VideoRecognizer


def froster(classes):
    module = METHODS["froster"]
    return module.build(module.Config(backbone=BackboneConfig(arch="tiny"), num_frames=2, distillation=False),
                        len(classes), classes)


def test_vocabulary_keeps_names_and_descriptions():
    vocabulary = ClassVocabulary(("run", "jump"), ("someone runs", "jump"))
    assert list(vocabulary) == ["run", "jump"] and vocabulary.descriptions == ("someone runs", None)
    assert vocabulary.texts() == ["run: someone runs", "jump"]
    assert ClassVocabulary(("jump",)).with_descriptions({"jump": "up"}).texts() == ["jump: up"]
    with pytest.raises(ValueError, match="1 class descriptions for 2 class names"):
        ClassVocabulary(("a", "b"), ("x",))


def test_froster_keeps_its_descriptions_after_other_classes():
    model = froster(["Run: someone runs fast", "Jump: both feet leave the ground"]).eval()
    defaults = model.class_embeddings().clone()
    model.set_class_names(["cat", "dog"])  # a custom request (serve): other names, bare
    assert model.vocabulary.texts() == ["cat", "dog"]
    model.set_class_names(["Run", "Jump"])  # the defaults again, bare
    assert model.vocabulary.texts() == ["Run: someone runs fast", "Jump: both feet leave the ground"]
    assert torch.equal(model.class_embeddings(), defaults)


def test_a_method_without_a_contract_part_fails_loudly():
    class Headless(VideoRecognizer):
        def forward_features(self, video):
            return video.flatten(1)

    with pytest.raises(NotImplementedError, match="forward_head"):
        Headless(None)(torch.zeros(1, 2, 3, 4, 4))
    with pytest.raises(NotImplementedError, match="input_config"):
        Headless(None).input_config()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_implements_the_whole_contract(name):
    module = METHODS[name]
    defined = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, VideoRecognizer)
               and v.__module__ == module.__name__]
    models = [c for c in defined if not any(o is not c and issubclass(o, c) for o in defined)]  # not shared bases
    assert models, f"{name} defines no model class"
    for cls in models:
        required = ["forward_features", "forward_head", "input_config"]
        if cls.uses_text or name == "frozen":  # frozen is text-based with its zero-shot classifier
            required += ["class_embeddings", "vocabulary_changed"]
        missing = [m for m in required if getattr(cls, m) is getattr(VideoRecognizer, m)]
        assert not missing, f"{name}: {cls.__name__} does not implement {missing}"


def test_an_older_model_file_without_test_settings_is_fed_by_the_models_record(tmp_path):
    """Files written before input_config() carry `config.data` only: the model's record fills in
    the rest (Text4Vis: features averaged over views), the file's own fields still win."""
    import clipvideo
    from clipvideo.engine.checkpoint import save_model

    module = METHODS["text4vis"]
    model = module.build(module.Config(backbone=BackboneConfig(arch="tiny"), num_frames=2), 2, ["a", "b"])
    path = tmp_path / "old.pt"
    save_model(model, path)
    payload = torch.load(path, weights_only=True)
    payload["config"] = {"data": {"num_frames": 2, "short_side": 80}}  # the older layout
    torch.save(payload, path)
    loaded = clipvideo.load(path)
    assert loaded.test_config.aggregate == "feature" and loaded.data_config.short_side == 80
    assert loaded.data_config.sampling_protocol == "text4vis"


@pytest.mark.parametrize("classifier", ["text", "text-init"])
def test_freeze_classes_keeps_the_logits_and_drops_the_text_tower(classifier):
    module = METHODS["frozen"]
    model = module.build(module.Config(backbone=BackboneConfig(arch="tiny"), num_frames=2, classifier=classifier),
                         2, ["a", "b"]).eval()
    video = torch.randn(1, 2, 3, 64, 64)
    with torch.no_grad():
        expected = model(video)
        model.freeze_classes()
        torch.testing.assert_close(model(video), expected, rtol=0, atol=0)
    assert not [name for name, _ in model.named_parameters() if not name.startswith(("clip.visual.", "clip.logit", "head."))]
