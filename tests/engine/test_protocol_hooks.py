"""Engine hooks for the official protocols: LR schedule variants, view chunks, feature-level view
averaging, the train resize/crop and test short side keys, sampling protocols through the
datasets. Expected numbers are worked out by hand in the comments."""

import math

import pytest
import torch
from torch import nn

from clipvideo.data import FrameSampler
from clipvideo.engine import checkpoint as ckpt
from clipvideo.engine.config import ConfigError, DataConfig, TrainConfig, build_config
from clipvideo.engine.config import TestConfig as EvalSettings  # not collected by pytest
from clipvideo.engine.data import build_eval_dataset, build_train_dataset
from clipvideo.engine.evaluate import evaluate, score_views
from clipvideo.engine.train import build_model, build_scheduler, lr_multiplier

# ------------------------------------------------------------------------------------ LR schedules


def test_aim_schedule_per_iteration_warmup_from_a_tenth_and_per_epoch_cosine():
    # AIM: 30 epochs, warmup 2.5 epochs per iteration from 0.1x, cosine lr*0.5*(1+cos(pi*e/E)) per epoch.
    # 100 steps per epoch -> 250 warmup steps, 3000 steps.
    aim = dict(steps_per_epoch=100, num_epochs=30, warmup_start_factor=0.1, warmup_interval="step",
               cosine_interval="epoch")
    lr = lambda step: lr_multiplier(step, 3000, 250, 0.0, **aim)  # noqa: E731
    # step 0, epoch 0: 0.1 + 0.9*0/250 = 0.1, times cosine(epoch 0) = 1
    assert lr(0) == pytest.approx(0.1)
    # step 125, epoch 1: (0.1 + 0.9*125/250) * 0.5*(1+cos(pi/30)) = 0.55 * 0.5*(1+0.9945219) = 0.548493
    assert lr(125) == pytest.approx(0.548493, abs=1e-6)
    # step 250 ends the warmup; epoch 2: 0.5*(1+cos(2pi/30)) = 0.5*(1+0.9781476) = 0.9890738
    assert lr(250) == pytest.approx(0.9890738, abs=1e-7)
    # the whole epoch 2 is one value (steps 250..299), and epoch 29 is 0.5*(1-0.9945219) = 0.0027390
    assert lr(299) == lr(250) and lr(2999) == pytest.approx(0.0027390, abs=1e-7)
    # AIM's SSv2 log (aim.md): 50 epochs, last epoch logs lr 2.96e-7 at base 3e-4
    ssv2 = dict(aim, num_epochs=50)
    assert 3e-4 * lr_multiplier(49 * 100, 5000, 250, 0.0, **ssv2) == pytest.approx(2.96e-7, rel=2e-3)


def test_text4vis_schedule_steps_warmup_then_cosine_after_it():
    # Text4Vis: lr = base*e/W in warmup, base*0.5*(1+cos(pi*(e-W)/(E-W))) after, e = epoch + i/len
    # (fractional): our step intervals. 10 steps/epoch, 30 epochs, W = 5 epochs = 50 steps.
    lr = lambda step: lr_multiplier(step, 300, 50, 0.0, steps_per_epoch=10, num_epochs=30)  # noqa: E731
    # warmup from 0 counts from step + 1 (no step at LR 0): step 24 -> 25/50
    assert lr(24) == pytest.approx(0.5)
    # after warmup: step 175 -> e - W = 12.5 of 25 epochs -> 0.5*(1+cos(pi/2)) = 0.5
    assert lr(175) == pytest.approx(0.5)
    assert lr(50) == pytest.approx(1.0) and lr(300) == pytest.approx(0.0, abs=1e-12)


def test_epoch_warmup_changes_once_per_epoch():
    epochs = dict(steps_per_epoch=10, num_epochs=30, warmup_interval="epoch")
    # 5 warmup epochs from 0: epoch e -> (e+1)/5; epoch 0 = 0.2 for all its steps, epoch 4 = 1.0
    assert [lr_multiplier(s, 300, 50, 0.0, **epochs) for s in (0, 9, 10, 49)] == pytest.approx([0.2, 0.2, 0.4, 1.0])
    # from 0.1x: epoch e -> 0.1 + 0.9*e/5: epoch 1 = 0.28
    assert lr_multiplier(15, 300, 50, 0.0, warmup_start_factor=0.1, **epochs) == pytest.approx(0.28)


def _scheduler(train: TrainConfig, steps_per_epoch=10, total=60, epochs=6):
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=train.lr)
    return optimizer, build_scheduler(optimizer, train, steps_per_epoch, total, epochs)


def test_schedule_resumes_exactly_from_its_state():
    train = TrainConfig(lr=0.5, warmup_epochs=2.5, warmup_start_factor=0.1, cosine_interval="epoch", min_lr=0.01)
    optimizer, scheduler = _scheduler(train)
    full = []
    for step in range(60):
        full.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        if step == 22:
            saved = (optimizer.state_dict(), scheduler.state_dict())
    optimizer, scheduler = _scheduler(train)
    optimizer.load_state_dict(saved[0])
    scheduler.load_state_dict(saved[1])
    resumed = []
    for _ in range(23, 60):
        resumed.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert resumed == full[23:]
    # epoch cosine with a floor: epoch 5 of 6 -> 0.01 + 0.49*0.5*(1+cos(5pi/6)) = 0.01 + 0.245*(1-0.8660254)
    assert full[55] == pytest.approx(0.01 + 0.245 * (1 - math.sqrt(3) / 2))


@pytest.mark.parametrize("key, value, message", [
    ("warmup_interval", "iteration", "train.warmup_interval: expected 'step' or 'epoch'"),
    ("cosine_interval", "epochs", "train.cosine_interval: expected 'step' or 'epoch'"),
    ("warmup_start_factor", 1.5, "train.warmup_start_factor: expected a fraction"),
])
def test_bad_schedule_settings_are_one_line_errors(key, value, message):
    with pytest.raises(ConfigError, match=message):
        _scheduler(TrainConfig(**{key: value}))


# -------------------------------------------------------------------------------- views and features


class ToyVideoModel(nn.Module):
    """features = [m, -m] with m the mean pixel of the clip; logits = 10 * features (K = 2).
    Records the batch size of every call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward_features(self, video):
        self.calls.append(len(video))
        mean = video.float().mean(dim=(1, 2, 3, 4))
        return torch.stack([mean, -mean], dim=1)  # (B, 2)

    def forward_head(self, features):
        return 10 * features

    def forward(self, video):
        return self.forward_head(self.forward_features(video))


def views_with_means(*means) -> torch.Tensor:
    """(1, V, T=2, 3, 4, 4) views whose pixels all equal the given means."""
    return torch.stack([torch.full((2, 3, 4, 4), float(m)) for m in means])[None]


def test_feature_aggregation_averages_features_before_the_classifier():
    model = ToyVideoModel()
    views = views_with_means(3.0, -1.0)
    device = torch.device("cpu")
    # features [3,-3] and [-1,1] average to [1,-1] -> logits [10,-10] -> softmax [1/(1+e^-20), ...]
    feature = score_views(model, views, device, aggregate="feature")
    assert feature[0, 0] == pytest.approx(1 / (1 + math.exp(-20)))
    # probabilities: view 1 logits [30,-30] -> ~[1, 0], view 2 [-10, 10] -> ~[0, 1]: mean ~[0.5, 0.5]
    prob = score_views(model, views, device, aggregate="prob")
    assert prob[0, 0] == pytest.approx(0.5 * (1 / (1 + math.exp(-60)) + 1 / (1 + math.exp(20))))


def test_view_settings_are_checked():
    loader = [(views_with_means(1.0), torch.tensor([0]), torch.tensor([0]), torch.tensor([True]))]
    with pytest.raises(ConfigError, match="test.aggregate: expected one of prob, logit, feature"):
        evaluate(ToyVideoModel(), loader, torch.device("cpu"), aggregate="mean", progress=False, dataset=object())
    with pytest.raises(ConfigError, match="test.views_per_batch: expected a positive number"):
        evaluate(ToyVideoModel(), loader, torch.device("cpu"), views_per_batch=0, progress=False, dataset=object())


@pytest.mark.parametrize("aggregate", ["prob", "logit", "feature"])
def test_views_in_chunks_give_the_same_scores(aggregate):
    model = ToyVideoModel()
    views = torch.randn(2, 4, 2, 3, 4, 4)  # 2 videos x 4 views = 8 views
    whole = score_views(model, views, torch.device("cpu"), aggregate=aggregate)
    assert model.calls == [8]
    model.calls.clear()
    chunked = score_views(model, views, torch.device("cpu"), aggregate=aggregate, views_per_batch=3)
    assert model.calls == [3, 3, 2]
    assert torch.equal(chunked, whole)


def test_views_in_chunks_through_a_clip_model_match_all_at_once():
    config = build_config({"method": "frozen", "model": {"backbone": {"arch": "tiny"}, "num_frames": 2,
                                                         "temporal": "transformer", "classifier": "linear"}})
    model = build_model(config, 3, ["a", "b", "c"]).eval()
    views = torch.randn(2, 3, 2, 3, 32, 32)  # 6 views
    whole = score_views(model, views, torch.device("cpu"))
    chunked = score_views(model, views, torch.device("cpu"), views_per_batch=4)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)
    assert not torch.allclose(whole[0], whole[1], atol=1e-3)  # the views differ, so the comparison means something


# ---------------------------------------------------------------------------- data keys in the engine


def test_sampling_protocol_and_train_transform_keys_are_checked(motion_data):
    data = DataConfig(root=motion_data.root, train_list=motion_data.train_list, num_frames=4, input_size=32,
                      num_workers=0)
    for key, value, message in [
        ("sampling_protocol", "tsn", "data.sampling_protocol: expected one of clipvideo, evl"),
        ("sampling_protocol", "xclip", "data.sampling_protocol: 'xclip' defines segment sampling only, but "
                                       "data.sampling is 'dense'"),
        ("train_short_side", [256, 224], "data.train_short_side: expected"),
        ("train_short_side", [224, 240, 256], "data.train_short_side: expected"),
        ("train_crop", "center", "data.train_crop: expected one of random_resized, random, multiscale"),
    ]:
        with pytest.raises(ConfigError, match=message):
            build_train_dataset(DataConfig(**{**data.__dict__, key: value}))
    with pytest.raises(ConfigError, match="unknown key 'multiscale_crop'"):
        build_config({"data": {"multiscale_crop": True}})


def test_train_dataset_uses_the_short_side_range_and_crop(motion_data):
    data = DataConfig(root=motion_data.root, train_list=motion_data.train_list, num_frames=4, input_size=32,
                      train_short_side=[40, 48], train_crop="random", sampling="segment",
                      sampling_protocol="text4vis", num_workers=0)
    dataset = build_train_dataset(data)
    steps = [type(step).__name__ for step in dataset.transform.transforms]
    assert steps[:2] == ["RandomShortSide", "RandomCrop"]
    assert (dataset.transform.transforms[0].low, dataset.transform.transforms[0].high) == (40, 48)
    assert dataset.sampler.protocol == "text4vis"
    clip, _, _ = dataset[0]
    assert clip.shape == (4, 3, 32, 32)


def test_test_short_side_is_used_by_clipvideo_test_only(motion_data):
    data = DataConfig(root=motion_data.root, val_list=motion_data.val_list, num_frames=4, input_size=48,
                      short_side=56, num_workers=0)
    test = EvalSettings(short_side=48)
    assert build_eval_dataset(data, test).transform.short_side == 56  # validation during training
    assert build_eval_dataset(data, test, for_test=True).transform.short_side == 48  # clipvideo test
    assert build_eval_dataset(data, EvalSettings(), for_test=True).transform.short_side == 56  # unset: data's
    with pytest.raises(ConfigError, match="test.short_side: 40 is smaller than data.input_size 48"):
        build_eval_dataset(data, EvalSettings(short_side=40), for_test=True)


def test_run_test_reads_test_short_side(tmp_path, motion_data, monkeypatch):
    from clipvideo.engine import testing

    config = build_config({
        "method": "frozen",
        "model": {"backbone": {"arch": "tiny"}, "num_frames": 2, "classifier": "linear"},
        "data": {"root": motion_data.root, "val_list": motion_data.val_list, "num_frames": 2, "input_size": 32,
                 "short_side": 40, "num_workers": 0},
        "test": {"short_side": 48, "num_workers": 0, "batch_size": 8, "precision": "fp32", "views_per_batch": 5,
                 "num_clips": 2},
        "output_dir": str(tmp_path / "test"),
    })
    model = build_model(config, 9, [f"c{i}" for i in range(9)])
    ckpt.save_model(model, tmp_path / "model.pt")
    seen = []
    original = testing.build_eval_dataset
    monkeypatch.setattr(testing, "build_eval_dataset",
                        lambda *args, **kwargs: seen.append(original(*args, **kwargs)) or seen[-1])
    metrics = testing.run_test(config, str(tmp_path / "model.pt"))
    assert seen[0].transform.short_side == 48
    assert metrics["num_videos"] == len(seen[0]) and metrics["failed_videos"] == 0


def test_froster_protocol_gets_the_stream_fps_through_the_dataset(motion_data):
    # the synthetic videos are written at 8 fps
    data = DataConfig(root=motion_data.root, val_list=motion_data.val_list, num_frames=4, frame_stride=2,
                      input_size=32, short_side=32, sampling_protocol="froster", num_workers=0)
    dataset = build_eval_dataset(data, EvalSettings())
    calls = []
    original = dataset.sampler.test
    dataset.sampler.test = lambda n, num_clips=1, **kwargs: calls.append(kwargs) or original(n, num_clips, **kwargs)
    views, _, _, valid = dataset[0]
    assert valid and calls == [{"fps": pytest.approx(8.0)}]
    # at 8 fps a 4 x 2 clip (2 frames apart at 30 fps) has a window L = ceil(2*3/30*8) = ceil(1.6) = 2
    # frames (3 decoded) and spreads S = 2*4/30*8 = 2.133 over them: linspace(0, 1.133, 4) -> 0, 0, 0, 1
    assert original(16, 1, fps=8.0).tolist() == [[0, 0, 0, 1]]


def clip_indices(num_video_frames, data, num_clips, fps=None):
    """Clip frame indices as the evaluation dataset (and so predict) places them."""
    sampler = FrameSampler(data.num_frames, data.sampling, data.frame_stride, data.out_of_bounds, data.sampling_protocol)
    return sampler.test(num_video_frames, num_clips, fps=fps).tolist()


def test_predict_places_clips_by_the_models_protocol():
    # EVL: n=300, 8 x 16, slack 187, 3 views at round(93.5*c) = 0, 94, 187 (ours would be 31, 94, 156)
    evl = DataConfig(num_frames=8, frame_stride=16, sampling="dense", sampling_protocol="evl")
    assert [clip[0] for clip in clip_indices(300, evl, 3)] == [0, 94, 187]
    assert [clip[0] for clip in clip_indices(300, DataConfig(num_frames=8, frame_stride=16), 3)] == [31, 94, 156]
    # FROSTER at 25 fps: window L = ceil(112/30*25) = 94 frames, 95 decoded: 0,15,30,...,90, then 94
    froster = DataConfig(num_frames=8, frame_stride=16, sampling="dense", sampling_protocol="froster")
    assert clip_indices(300, froster, 1, fps=25.0) == [[0, 15, 30, 45, 60, 75, 90, 94]]
