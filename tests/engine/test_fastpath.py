"""The fast inference path (clipvideo/engine/fastpath.py): parity with fp32 for every method, and its parts.

Tolerance, measured on the tiny models of tests/engine/fastpath_helpers.py (relative max logit
error against fp32, over the largest |logit|): bf16 autocast 0.004-0.030, the fast path
0.004-0.027 (X-CLIP largest in both). The fast path must stay within 1.5x autocast's error + 0.005
and give fp32's top-1; a bf16-rounded logit scale (0.118 on Text4Vis) fails that.
"""

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clipvideo.clip.attention import scaled_dot_product_attention
from clipvideo.clip.layers import MLP, LayerNorm, QuickGELU, fold_quick_gelu
from clipvideo.engine.fastpath import PreparedModelError, fold_activations, prepare_for_inference
from clipvideo.engine.config import build_config
from clipvideo.engine.precision import autocast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastpath_helpers import METHODS, fast_copy, tiny_model  # noqa: E402

CPU = torch.device("cpu")


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref).abs().max() / ref.abs().max()).item()


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops on 2 shared cores stall with more
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("method", METHODS)
def test_fast_path_matches_fp32_as_closely_as_autocast(method, tmp_path):
    model, video = tiny_model(method, tmp_path)
    with torch.no_grad():
        reference = model(video)
        with autocast(CPU, "bf16"):
            autocast_error = relative_error(model(video), reference)
        fast = fast_copy(model)
        with autocast(CPU, "bf16"):
            logits = fast(video)
        plain_call = fast(video)  # model(...) runs in its dtype without the caller's autocast too
    assert fast.inference_dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for n, p in fast.named_parameters() if "ln" not in n and "norm" not in n
               and p.ndim > 1)
    error = relative_error(logits, reference)
    assert error <= 1.5 * autocast_error + 0.005, (method, error, autocast_error)
    assert torch.equal(logits.argmax(1), reference.argmax(1))
    torch.testing.assert_close(plain_call, logits, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["evl", "text4vis"])
def test_cast_weights_false_keeps_fp32_weights_and_autocast_numbers(method, tmp_path):
    model, video = tiny_model(method, tmp_path)
    kept = prepare_for_inference(copy.deepcopy(model), "bf16", cast=False)
    assert all(p.dtype == torch.float32 for p in kept.parameters())
    with torch.no_grad(), autocast(CPU, "bf16"):
        torch.testing.assert_close(kept(video), model(video), rtol=0, atol=0)


def test_fp32_leaves_the_model_alone(tmp_path):
    model, video = tiny_model("aim", tmp_path)
    with torch.no_grad():
        before = model(video)
        prepare_for_inference(model, "fp32")
        torch.testing.assert_close(model(video), before, rtol=0, atol=0)
    model.state_dict()  # nothing folded: a plain model still saves


def test_fold_quick_gelu_is_exact_in_fp32_and_needs_both_scales():
    torch.manual_seed(0)
    mlp = MLP(16, 64, QuickGELU)
    x = torch.randn(5, 16)
    with torch.no_grad():
        reference = mlp(x)
        folded = copy.deepcopy(mlp)
        assert fold_activations(folded) == 1 and isinstance(folded.gelu, torch.nn.SiLU)
        torch.testing.assert_close(folded(x), reference, rtol=1e-5, atol=1e-6)
        # without the 1/1.702 on the second layer the output is off by that factor
        half = copy.deepcopy(mlp)
        half.c_fc.weight.mul_(1.702), half.c_fc.bias.mul_(1.702)
        assert not torch.allclose(half.c_proj(F.silu(half.c_fc(x))), reference, rtol=1e-3)


def test_fold_finds_sequential_mlps_across_dropout_and_skips_other_patterns():
    seq = torch.nn.Sequential(torch.nn.Linear(8, 32), QuickGELU(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 8)).eval()
    lone = torch.nn.Sequential(torch.nn.Linear(8, 8), QuickGELU())  # nothing after the activation: left as is
    x = torch.randn(3, 8)
    with torch.no_grad():
        reference = seq(x)
        assert fold_activations(seq) == 1 and fold_activations(lone) == 0
        torch.testing.assert_close(seq(x), reference, rtol=1e-5, atol=1e-6)
    assert isinstance(lone[1], QuickGELU)


def test_fold_quick_gelu_returns_an_in_place_silu():
    act = fold_quick_gelu(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    assert isinstance(act, torch.nn.SiLU) and act.inplace


def test_layer_norm_native_path_matches_the_fp32_path_within_one_ulp():
    torch.manual_seed(0)
    norm = LayerNorm(768)
    torch.nn.init.normal_(norm.weight), torch.nn.init.normal_(norm.bias)
    x = (torch.randn(64, 768) * 3 + 1).bfloat16()
    with torch.no_grad():
        reference = norm(x)
        norm.native_reduced_precision = True
        native = norm(x)
        assert native.dtype == torch.bfloat16
        ulp = torch.finfo(torch.bfloat16).eps * reference.float().abs().clamp(min=1)
        assert ((native.float() - reference.float()).abs() <= ulp).all()
        full = norm(x.float())  # fp32 input: the plain path
        torch.testing.assert_close(full, F.layer_norm(x.float(), (768,), norm.weight, norm.bias))


@pytest.mark.parametrize("keys", [8, 32, 33])
def test_short_key_attention_matches_sdpa(keys):
    torch.manual_seed(0)
    q, k, v = (torch.randn(6, 4, keys, 16) for _ in range(3))
    reference = F.scaled_dot_product_attention(q, k, v)
    out = scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, rtol=0, atol=0.04)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v), reference, rtol=0, atol=0)  # fp32: SDPA


def test_a_prepared_model_refuses_to_be_saved_or_prepared_twice(tmp_path):
    model, video = tiny_model("evl", tmp_path)
    prepare_for_inference(model, "bf16")
    with pytest.raises(PreparedModelError, match="prepared for fast inference"):
        model.state_dict()
    weights = [p.clone() for p in model.parameters()]
    prepare_for_inference(model, "bf16")  # a second call folds nothing again
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert not any(p.requires_grad for p in model.parameters())


def test_new_classes_on_a_prepared_text_model_are_encoded_with_its_weights(tmp_path):
    model, video = tiny_model("froster", tmp_path)
    fast = fast_copy(model)
    names = ["knitting", "skiing", "rowing"]
    model.set_classes(names)
    fast.set_classes(names)
    with torch.no_grad():
        reference = model(video)
        with autocast(CPU, "bf16"):
            logits = fast(video)
    assert logits.shape == (2, 3)
    assert relative_error(logits, reference) < 0.03


def test_predict_compile_flag_compiles_reports_and_scores_as_the_fast_path(tmp_path, capsys):
    """`clipvideo predict --compile`: torch.compile with freezing, the first call's time on stderr,
    and the scores of the uncompiled fast path."""
    import json

    from clipvideo.cli import main as cli
    from clipvideo.data.synthetic import write_video
    from clipvideo.engine.checkpoint import save_model

    model, _ = tiny_model("aim", tmp_path)
    save_model(model, tmp_path / "model.pt")
    video = tmp_path / "clip.mp4"
    write_video(video, list(torch.randint(0, 255, (24, 64, 64, 3), dtype=torch.uint8).numpy()), fps=8)
    runs = {}
    for flag in ([], ["--compile"]):
        assert cli(["predict", str(video), "--checkpoint", str(tmp_path / "model.pt"), "--precision", "bf16",
                    "--json", *flag]) == 0
        captured = capsys.readouterr()
        runs[bool(flag)] = (json.loads(captured.out)[0]["top"], captured.err)
    assert "compiled: the first call took" in runs[True][1] and "compiled" not in runs[False][1]
    plain, compiled = runs[False][0], runs[True][0]
    assert [t["label"] for t in compiled][:1] == [t["label"] for t in plain][:1]
    for a, b in zip(plain, compiled):
        assert abs(a["score"] - b["score"]) < 0.02


def test_a_failing_compile_is_one_line_naming_the_option(tmp_path, monkeypatch):
    from clipvideo.engine import fastpath
    from clipvideo.engine.config import ConfigError

    model, video = tiny_model("frozen", tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("InductorError: no C++ compiler found\nlong traceback")

    monkeypatch.setattr(fastpath, "timed_first_call", broken)
    with pytest.raises(ConfigError, match=r"torch.compile failed \(RuntimeError: InductorError: no C\+\+ compiler "
                                          r"found\); run without --compile") as error:
        fastpath.compile_or_explain(model, video, CPU, "bf16")
    assert "\n" not in str(error.value)


def test_train_compile_trains_the_same_steps_and_saves_plain_keys(tmp_path, motion_data, capfd):
    """`train.compile: true`: the compiled training step gives the eager run's weights after two
    steps (same seed), logs the first step's compile time, and model.pt keeps the plain key names."""
    from clipvideo.engine.train import fit
    from test_engine import recipe_for  # noqa: E402 -- the engine tests' tiny temporal recipe

    runs = {}
    for compiled in (False, True):
        recipe = recipe_for(tmp_path / f"run{compiled}", motion_data, epochs=1, max_steps=2, compile=compiled,
                            optimizer="sgd", lr=0.1)  # SGD: updates proportional to the gradients (AdamW's
        # first steps are sign-like, so 1e-7 gradient differences can flip near-zero updates)
        runs[compiled] = fit(build_config(recipe, "compile test"))["run_dir"]
        logged = "train.compile: the first forward and backward took" in capfd.readouterr().err
        assert logged == compiled
    eager, compiled = (torch.load(Path(r) / "model.pt", weights_only=True)["model"] for r in (runs[False], runs[True]))
    assert eager.keys() == compiled.keys() and not any("_orig_mod" in k for k in compiled)
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-4, atol=1e-5)


def test_the_fast_path_benchmark_runs_every_path_against_a_measured_ceiling(tmp_path):
    """benchmarks/fast_path.py at tiny size: every path's row with a ceiling measured in the run
    (no timing value is asserted, only that each row was measured)."""
    import json
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "fast_path.py"
    done = subprocess.run([sys.executable, str(script), "--arch", "tiny", "--methods", "evl", "aim", "--batches", "1",
                           "--rounds", "2", "--seconds", "0", "--no-compile", "--json", str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert [(r["method"], r["path"]) for r in result["rows"]] == [
        (m, p) for m in ("evl", "aim") for p in ("fp32", "autocast", "fast")]
    for row in result["rows"]:
        assert row["ceiling_tflops"] > 0 and len(row["shares"]) == 2
        assert row["share_of_ceiling"] == pytest.approx(row["tflops"] / row["ceiling_tflops"])
    assert "| evl | 1 | fast |" in done.stdout and "machine: load average" in done.stdout


def test_test_compile_flag_reports_the_compile_and_scores_as_without_it(tmp_path, capsys):
    """`clipvideo test --compile` on a model file: the compile time is printed and written to
    test_metrics.json, and the top-1 matches the uncompiled fast path's."""
    import json

    from clipvideo.cli import main as cli
    from clipvideo.data.synthetic import write_video
    from clipvideo.engine.checkpoint import save_model

    model, _ = tiny_model("frozen", tmp_path)
    save_model(model, tmp_path / "model.pt")
    for i in range(2):
        write_video(tmp_path / f"v{i}.mp4", list(torch.randint(0, 255, (24, 64, 64, 3), dtype=torch.uint8).numpy()), fps=8)
    (tmp_path / "list.txt").write_text("v0.mp4 0\nv1.mp4 1\n")
    results = {}
    for flag in ([], ["--compile"]):
        out = tmp_path / f"out{len(flag)}"
        assert cli(["test", "--checkpoint", str(tmp_path / "model.pt"), "--list", str(tmp_path / "list.txt"),
                    "--set", f"data.root={tmp_path}", "test.precision=bf16", "test.num_workers=0",
                    "--output-dir", str(out), *flag]) == 0
        printed = capsys.readouterr().out
        results[bool(flag)] = (json.loads((out / "test_metrics.json").read_text()), printed,
                               [json.loads(line)["top"][0] for line in (out / "predictions.jsonl").read_text().splitlines()])
    assert "compiled: the first call took" in results[True][1] and "compiled" not in results[False][1]
    assert results[True][0]["compile_seconds"] > 0 and "compile_seconds" not in results[False][0]
    assert [t["name"] for t in results[True][2]] == [t["name"] for t in results[False][2]]
