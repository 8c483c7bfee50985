"""Bad model files given to predict / test / train --resume: one line naming the file, exit 2."""

import torch

from clipvideo.cli import main
from clipvideo.engine.checkpoint import save_model
from clipvideo.methods import frozen
from clipvideo.methods.base import BackboneConfig


def tiny_model_file(path):
    config = frozen.Config(backbone=BackboneConfig(arch="tiny", image_resolution=64), num_frames=4,
                           temporal="transformer", classifier="linear")
    save_model(frozen.build(config, 3, ["a", "b", "c"]), path)
    return path


def one_line_error(capsys, argv, *fragments):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_bad_model_files_are_one_line_errors(tmp_path, capsys):
    good = tiny_model_file(tmp_path / "model.pt")
    video = tmp_path / "v.mp4"  # never opened: the model file fails first

    one_line_error(capsys, ["predict", video, "--checkpoint", tmp_path / "none.pt"], "none.pt: no such checkpoint")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    one_line_error(capsys, ["predict", video, "--checkpoint", tmp_path / "garbage.pt"], "garbage.pt: cannot read the checkpoint")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    one_line_error(capsys, ["predict", video, "--checkpoint", truncated], "truncated.pt: cannot read the checkpoint")
    # A CLIP (or official) file is not a native model file: say where official ones go.
    torch.save({"visual.conv1.weight": torch.zeros(64, 3, 16, 16)}, tmp_path / "clip.pt")
    one_line_error(capsys, ["predict", video, "--checkpoint", tmp_path / "clip.pt"],
                   "clip.pt: not a clipvideo checkpoint (no 'method' entry)", "clipvideo convert")
    # Weights that do not fit the recorded architecture.
    payload = torch.load(good, weights_only=True)
    payload["model"].pop("head.weight")
    torch.save(payload, tmp_path / "edited.pt")
    one_line_error(capsys, ["predict", video, "--checkpoint", tmp_path / "edited.pt"],
                   "edited.pt: weights do not fit the recorded model", "head.weight")
    payload = torch.load(good, weights_only=True)
    payload["method"] = "nosuchmethod"
    torch.save(payload, tmp_path / "method.pt")
    one_line_error(capsys, ["predict", video, "--checkpoint", tmp_path / "method.pt"], "unknown method 'nosuchmethod'")
    # A pickle that would run code is refused, not executed.

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"method": Evil()}, tmp_path / "evil.pt")
    one_line_error(capsys, ["predict", video, "--checkpoint", tmp_path / "evil.pt"], "evil.pt: cannot read the checkpoint")
    # A linear-head model cannot take zero-shot class names.
    one_line_error(capsys, ["predict", video, "--checkpoint", good, "--classes", "x,y"], "cannot take --classes")
    # test and resume read model files the same way.
    one_line_error(capsys, ["test", "--checkpoint", tmp_path / "garbage.pt"], "garbage.pt: cannot read the checkpoint")
    one_line_error(capsys, ["train", "configs/frozen/tiny_synthetic.yaml", "--resume", tmp_path / "garbage.pt",
                            "--set", f"output_dir={tmp_path / 'run'}", "data.dummy=true", "data.class_names=",
                            "data.val_list=", "data.num_workers=0"],
                   "garbage.pt: cannot read the checkpoint")
    # predict --set takes data.* and test.* only, and checks them.
    one_line_error(capsys, ["predict", video, "--checkpoint", good, "--set", "train.lr=1"], "predict takes only data.* and test.*")
    one_line_error(capsys, ["predict", video, "--checkpoint", good, "--set", "data.input_sise=96"],
                   "unknown key 'input_sise'; did you mean 'input_size'")
