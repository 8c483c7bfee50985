"""The command line as a user meets it: every command's bad input is one line and a documented
exit status (clipvideo/errors.py), every command and option is described, the same option
means the same thing everywhere, and `clipvideo models | head` does not end in a traceback."""

import argparse
import os
import subprocess
import sys

import pytest
import torch

from clipvideo import zoo
from clipvideo.cli import build_parser, main


def _subcommands(parser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _run(argv, capsys):
    """(exit status, stdout, stderr) of `clipvideo ARGV` run in this process."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit:  # argparse: usage errors, --help, --version
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line(err: str, command: str, *needles: str):
    assert err.startswith(f"clipvideo {command}: error: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    torch.save({"args": argparse.Namespace(lr=0.1)}, tmp_path / "pickled.pt")  # a file torch.load would need code for
    (tmp_path / "video.mp4").write_bytes(b"\x00" * 100)
    (tmp_path / "run").mkdir()
    (tmp_path / "a_file").write_text("x")
    return tmp_path


def bad_inputs(d):
    """(command line, text the error must contain) for every command."""
    return [
        (["train", d / "missing.yaml"], "missing.yaml"),
        (["test", "--checkpoint", d / "text.pt"], "text.pt"),
        (["predict", d / "video.mp4", "--checkpoint", d / "pickled.pt"], "pickled.pt"),
        (["convert", "xclip", d / "missing.pth", d / "out.pt"], "missing.pth"),
        (["prepare", d / "missing.txt", "--out", d / "store"], "missing.txt"),
        (["bench", "data", d / "missing.yaml"], "missing.yaml"),
        (["serve", "--checkpoint", d / "text.pt"], "text.pt"),
        (["models", "--dataset", "no-such-set"], "k400"),
        (["export", d / "missing.pt", d / "out.onnx", "--format", "onnx"], "missing.pt"),
        (["zeroshot", d / "missing.yaml", "--dataset", "ucf101"], "missing.yaml"),
        (["b2n", d / "missing.yaml", "--dataset", "hmdb51"], "missing.yaml"),
        (["fewshot-lists", d / "missing.txt", "--out", d / "lists"], "missing.txt"),
        (["fewshot", d / "missing.yaml", "--shots", "2"], "missing.yaml"),
        (["text4vis-lda", d / "missing.yaml"], "missing.yaml"),
        (["average", d / "run", "--epochs", "1-2", d / "avg.pt"], "run"),
        (["demo", "--output-dir", d / "a_file" / "runs"], "a_file"),
        (["lists", d / "no_folder", "--out", d / "lists"], "no_folder"),
        (["compare", d / "no_folder", "--out", d / "compared"], "no_folder"),
        (["embed", d / "missing.txt", "--checkpoint", d / "text.pt", "--out", d / "emb"], "missing.txt"),
        (["search", d / "no_index", "a person juggling"], "no_index"),
    ]


def test_every_command_with_bad_input_is_one_line_with_status_2(bad_files, capsys):
    cases = bad_inputs(bad_files)
    assert {argv[0] for argv, _ in cases} == set(_subcommands(build_parser()))  # each command is tried
    for argv, needle in cases:
        status, _, err = _run(argv, capsys)
        assert status == 2, (argv, err)
        assert_one_line(err, argv[0], needle)
        assert "weights_only=False" not in err and "Errno" not in err, err


def test_a_file_that_is_not_a_checkpoint_never_suggests_an_unsafe_load(bad_files, capsys):
    for argv in (["predict", bad_files / "video.mp4", "--checkpoint", bad_files / "pickled.pt"],
                 ["test", "--checkpoint", bad_files / "pickled.pt"]):
        status, _, err = _run(argv, capsys)
        assert status == 2
        assert_one_line(err, argv[0], "pickled.pt: cannot read the checkpoint", "argparse.Namespace")
        assert "weights_only" not in err


@pytest.mark.parametrize("device", ["cuda", "gpu", "cuda:0"])
def test_a_gpu_that_is_not_there_is_one_line(bad_files, capsys, monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on machines with a GPU
    for argv in (["predict", bad_files / "video.mp4", "--checkpoint", bad_files / "text.pt"],
                 ["bench", "model", bad_files / "missing.yaml"], ["serve", "--checkpoint", bad_files / "text.pt"]):
        status, _, err = _run([*argv, "--device", device], capsys)
        assert status == 2
        assert_one_line(err, argv[0], f"--device {device}: PyTorch sees no CUDA GPU", "--device cpu")


def test_train_on_a_gpu_that_is_not_there_is_one_line(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = Path(__file__).resolve().parents[2] / "configs" / "frozen" / "tiny_synthetic.yaml"
    status, _, err = _run(["train", recipe, "--set", "train.device=cuda", "--output-dir", tmp_path / "run"], capsys)
    assert status == 2
    assert_one_line(err, "train", "train.device=cuda: PyTorch sees no CUDA GPU", "train.device=cpu")


def test_usage_errors_are_one_line_naming_the_help(capsys):
    status, _, err = _run(["predict", "video.mp4", "--top-k", "0"], capsys)
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("clipvideo predict: error: argument --top-k") and "clipvideo predict --help" in err
    status, _, err = _run(["no-such-command"], capsys)
    assert status == 2 and err.count("\n") == 1 and "invalid choice" in err


def test_a_bare_predict_says_which_model_options_there_are(tmp_path, capsys):
    status, _, err = _run(["predict", tmp_path / "x.mp4"], capsys)
    assert status == 2
    assert_one_line(err, "predict", "--checkpoint", "--model", "--backbone")


def _closed_pipe_run(args):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte, as with `| head` that has quit
    try:
        return subprocess.run([sys.executable, "-m", "clipvideo", *args], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    finally:
        os.close(write_end)


def test_a_closed_output_pipe_ends_quietly_with_status_141():
    done = _closed_pipe_run(["models"])
    assert done.returncode == 141 and done.stderr == ""


def test_version(capsys):
    from clipvideo import __version__

    status, out, _ = _run(["--version"], capsys)
    assert status == 0 and out.strip() == f"clipvideo {__version__}"


def test_every_command_has_a_description_and_every_option_help():
    parser = build_parser()
    for name, sub in _subcommands(parser).items():
        assert sub.description and len(sub.description) > 80, f"{name}: no description"
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"clipvideo {name} {'/'.join(action.option_strings) or action.dest}: no help"


def test_an_option_means_the_same_in_every_command():
    seen: dict[str, tuple] = {}
    for name, sub in _subcommands(build_parser()).items():
        for action in sub._actions:
            for option in action.option_strings:
                if option in ("--device", "--json", "--precision", "--checkpoint", "--model", "--num-frames",
                              "--top-k", "--seeds", "--separator"):
                    if option == "--precision" and name in ("bench", "compare"):
                        continue  # bench times several precisions; compare trains (fp32 by default)
                    if option == "--checkpoint" and name in ("b2n", "compare"):
                        continue  # one per split / METHOD=FILE rows
                    key = (action.default, action.help if option != "--checkpoint" else None)
                    assert seen.setdefault(option, key) == key, f"clipvideo {name} {option} differs: {key}"
    assert seen["--device"][0] == "auto"


def test_fewshot_seeds_take_either_spelling(tmp_path, capsys):
    listing = tmp_path / "train.txt"
    listing.write_text("".join(f"v{i}.mp4 {i % 2}\n" for i in range(8)))
    for spelling, out in (("--seed", "a"), ("--seeds", "b")):
        status, printed, err = _run(["fewshot-lists", listing, "--shots", "2", spelling, "0", "1",
                                     "--out", tmp_path / out], capsys)
        assert status == 0, err
        assert sorted(p.name for p in (tmp_path / out).iterdir()) == ["train_2shot_seed0.txt", "train_2shot_seed1.txt"]
    parser = _subcommands(build_parser())
    assert parser["fewshot"].parse_args(["r.yaml", "--shots", "2", "--seed", "5"]).seeds == [5]


def test_one_dataset_vocabulary_for_the_zoo_and_the_protocols(capsys):
    from clipvideo import protocols, vocabulary

    assert vocabulary.canonical("K400") == vocabulary.canonical("Kinetics-400") == "kinetics400"
    assert protocols.canonical("k400") == "kinetics400" and protocols.canonical("sthv2") == "ssv2"
    by_short = zoo.list_models(dataset="k400")
    assert by_short and zoo.list_models(dataset="kinetics400") == by_short
    status, out, _ = _run(["models", "--dataset", "kinetics400"], capsys)
    assert status == 0 and f"{len(by_short)} models" in out


def test_unknown_filter_values_are_answered_with_the_valid_ones(capsys):
    status, _, err = _run(["models", "--method", "xclp"], capsys)
    assert status == 2
    assert_one_line(err, "models", "'xclp'", "xclip", "evl", "aim")
    status, _, err = _run(["models", "--dataset", "kinetics-401"], capsys)
    assert status == 2
    assert_one_line(err, "models", "k400", "hmdb51")


def test_convert_lists_its_methods(capsys):
    from clipvideo.official import IMPORTERS

    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    out = capsys.readouterr().out
    assert all(method in out for method in IMPORTERS)
    status, _, err = _run(["convert", "clip4clip", "a.pth", "b.pt"], capsys)
    assert status == 2 and all(method in err for method in IMPORTERS)


def test_an_unreadable_video_in_predict_names_its_path_once_without_errno(tiny_clip_file, bad_files, capsys):
    garbage = bad_files / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 12)
    status, out, err = _run(["predict", garbage, "--backbone", tiny_clip_file, "--classes", "a,b", "--precision", "fp32"],
                            capsys)
    assert status == 1 and err == ""
    assert out.startswith(f"{garbage}: ERROR unreadable") and out.count(str(garbage)) == 1 and "Errno" not in out
