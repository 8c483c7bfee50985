"""Recipes and overrides: typed, validated, errors that name the key."""

import pytest
import yaml

from clipvideo.engine.config import Config, ConfigError, load_config, method_config, parse_overrides, save_config


def write(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_recipe_and_overrides_are_typed(tmp_path):
    path = write(tmp_path, "method: frozen\nmodel:\n  temporal: transformer\ntrain:\n  lr: 1e-4\n  epochs: 3\n")
    config = load_config(path, ["train.lr=3e-4", "data.root=/data/k400", "data.scale=[0.5,1.0]", "train.grad_clip=1"])
    assert isinstance(config, Config)
    assert config.train.lr == pytest.approx(3e-4) and isinstance(config.train.lr, float)
    assert config.train.epochs == 3
    assert config.train.grad_clip == 1.0
    assert config.data.root == "/data/k400"
    assert config.data.scale == [0.5, 1.0]
    assert method_config(config.method, config.model).temporal == "transformer"
    # Defaults fill what the recipe leaves out.
    assert config.data.num_frames == 8 and config.test.aggregate == "prob"


def test_unknown_key_suggests_the_closest(tmp_path):
    path = write(tmp_path, "train:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"recipe.yaml.*train: unknown key 'lrr'; did you mean 'lr'\?"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"unknown key 'bach_size'; did you mean 'batch_size'"):
        load_config(None, ["train.bach_size=4"])
    with pytest.raises(ConfigError, match=r"model.*unknown key 'temporl'; did you mean 'temporal'"):
        load_config(None, ["model.temporl=mean"])
    with pytest.raises(ConfigError, match=r"unknown method 'evll'"):
        load_config(None, ["method=evll"])


def test_wrong_types_are_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"train.epochs: expected an integer, got 'ten'"):
        load_config(None, ["train.epochs=ten"])
    with pytest.raises(ConfigError, match=r"data.flip: expected true or false"):
        load_config(None, ["data.flip=maybe"])
    with pytest.raises(ConfigError, match=r"model.backbone: expected a mapping"):
        load_config(None, ["model.backbone=ViT-B/16"])
    with pytest.raises(ConfigError, match=r"expected key=value"):
        parse_overrides(["train.lr"])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match=r"missing.yaml: no such config file"):
        load_config(tmp_path / "missing.yaml")
    broken = write(tmp_path, "train:\n  lr: [1, 2\n", "broken.yaml")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+:"):
        load_config(broken)
    listy = write(tmp_path, "- a\n- b\n", "list.yaml")
    with pytest.raises(ConfigError, match=r"expected a mapping at the top level"):
        load_config(listy)


def test_resolved_config_round_trips(tmp_path):
    config = load_config(None, ["train.lr=0.002", "model.num_frames=4"])
    save_config(config, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == config
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["lr"] == 0.002


def test_set_values_that_are_not_yaml(tmp_path):
    """`--set data.separator=,` means the string ","; a broken list is a one-line error naming the key."""
    from test_engine import run_cli

    assert load_config(None, ["data.separator=,"]).data.separator == ","
    assert load_config(None, ["data.root=@home/videos"]).data.root == "@home/videos"
    broken = run_cli("train", "configs/frozen/tiny_synthetic.yaml", "--set", "train.lr=[", check=False)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1
    assert broken.stderr.startswith("clipvideo train: error: --set train.lr=[: train.lr is not valid YAML")
    quote = run_cli("train", "configs/frozen/tiny_synthetic.yaml", "--set", "data.root='abc", check=False)
    assert quote.returncode == 2 and "data.root is not valid YAML" in quote.stderr and "Traceback" not in quote.stderr
