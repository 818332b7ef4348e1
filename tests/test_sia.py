"""The empirical SIA check (`cascadeprune sia`): known answers on tiny models built for them, the CLI's
errors and its JSON schema. Tiny random models, seconds, no downloads."""

from __future__ import annotations

import json
import math

import pytest
import torch
import transformers

from cascadeprune.arch.resolve import resolve
from cascadeprune.cli import main
from cascadeprune.errors import CascadePruneError
from cascadeprune.sia.gradient import A_grad, I_grad, mask_gradients
from cascadeprune.sia.measure import GRADES, measure
from cascadeprune.storage.sources import TINY_CONFIGS, tiny_model
from cascadeprune.tasks import get_task


class LinearReadout:
    """A task whose loss is linear in layer 0's output: every head's (through the output projection) and every
    channel's (through the down projection) contribution adds, so removals are additive by construction."""

    name = "linear-readout"

    def __init__(self, model, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(model.config.hidden_size, generator=g, dtype=torch.float64)
        self.vocab = model.config.vocab_size

    def calibration_batches(self, mix, n, batch_size, seed):
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(self.vocab, (n, 12), generator=g)
        return [ids[i: i + batch_size] for i in range(0, n, batch_size)]

    def loss(self, model, batch):
        seen = {}
        layer = resolve(model).layers[0].module
        h = layer.register_forward_hook(lambda m, a, o: seen.setdefault("h", o[0] if isinstance(o, tuple) else o))
        try:
            model(input_ids=batch)
        finally:
            h.remove()
        return (seen["h"] @ self.w).mean()


def one_layer_llama(zero_ffn: bool) -> torch.nn.Module:
    cls, kw = TINY_CONFIGS["llama"]
    torch.manual_seed(0)
    m = transformers.AutoModelForCausalLM.from_config(getattr(transformers, cls)(**{**kw, "num_hidden_layers": 1}),
                                                      dtype=torch.float64).eval()
    if zero_ffn:  # the FFN reads the attention output: without it, heads could interact through it
        with torch.no_grad():
            m.model.layers[0].mlp.down_proj.weight.zero_()
    return m


@pytest.mark.parametrize("granularity", ["heads", "channels"])
def test_an_additive_model_gives_A_1_and_no_interaction(granularity):
    model = one_layer_llama(zero_ffn=granularity == "heads")
    task = LinearReadout(model)
    r = measure(model, task, granularity, units=96, pairs=30, ratio=1.3, random_sets=2)  # all units: exact sums
    assert r["single"]["measured"] == r["units_total"] and r["pairs"]["within"]["n"] > 0
    assert r["pairs"]["across"]["n"] > 0 or granularity == "channels"  # one layer: every channel pair is within
    for key in ("within",) + (("across",) if r["pairs"]["across"]["n"] else ()):
        assert r["pairs"][key]["max"] < 1e-6  # |I| / (|δi| + |δj|)
    c = r["sets"]["criterion"]
    assert c["units"] > 1 and c["coverage"] == 1.0 and c["determined"] and abs(c["A"] - 1) < 1e-6
    assert all(abs(x["A"] - 1) < 1e-6 for x in r["sets"]["random"])
    assert r["rank"]["tau_rescore"] == pytest.approx(1.0)  # the survivors' statistics do not move
    assert r["verdict"] == "holds", r["signals"]


class SquaredReadout(LinearReadout):
    """The readout squared: a smooth nonlinearity, so units whose outputs overlap interact."""

    name = "squared-readout"

    def loss(self, model, batch):
        seen = {}
        layer = resolve(model).layers[0].module
        h = layer.register_forward_hook(lambda m, a, o: seen.setdefault("h", o[0] if isinstance(o, tuple) else o))
        try:
            model(input_ids=batch)
        finally:
            h.remove()
        return (seen["h"] @ self.w).pow(2).mean()


def cancelling_heads(scale: float = 5.0) -> torch.nn.Module:
    """Heads 0 and 1 (one KV group) compute the same thing with opposite output projections, both large:
    either alone is a big perturbation, together they are nothing."""
    m = one_layer_llama(zero_ffn=True)
    attn, hd = m.model.layers[0].self_attn, m.config.hidden_size // m.config.num_attention_heads
    with torch.no_grad():
        attn.q_proj.weight[hd: 2 * hd] = attn.q_proj.weight[:hd]
        attn.o_proj.weight[:, :hd] *= scale
        attn.o_proj.weight[:, hd: 2 * hd] = -attn.o_proj.weight[:, :hd]
    return m


def test_a_constructed_interaction_is_detected():
    model = cancelling_heads()
    r = measure(model, SquaredReadout(model), "heads", units=8, pairs=100, random_sets=1)
    assert r["single"]["measured"] == 8 and r["pairs"]["within"]["n"] + r["pairs"]["across"]["n"] == 8 * 7 // 2
    top = r["pairs"]["top"][0]
    assert {top["a"], top["b"]} == {"L0.h0", "L0.h1"} and top["within"] is True
    assert top["I_norm"] == pytest.approx(-1.0, abs=0.05)  # removing both costs (almost) nothing: δ01 ≈ 0
    assert {x["unit"] for x in r["single"]["largest"][:2]} == {"L0.h0", "L0.h1"}
    # the same model under the linear readout: the pair cancels exactly and nothing else interacts
    lin = measure(model, LinearReadout(model), "heads", units=8, pairs=100, random_sets=1)
    assert lin["pairs"]["within"]["max"] < 1e-6


@pytest.mark.parametrize("granularity", ["heads", "channels"])
def test_mask_gradients_equal_finite_differences(granularity):
    model = one_layer_llama(zero_ffn=False)
    task = SquaredReadout(model)
    batch = task.calibration_batches(None, 4, 4, 0)
    g = mask_gradients(model, task, batch, granularity)
    layer = resolve(model).layers[0]
    hd = model.config.hidden_size // model.config.num_attention_heads
    for unit in [(0, 1), (0, 3)]:
        cols = slice(unit[1] * hd, (unit[1] + 1) * hd) if granularity == "heads" else slice(unit[1], unit[1] + 1)

        def loss_at(scale):
            def pre(module, args):
                x = args[0].clone()
                x[..., cols] *= scale
                return (x, *args[1:])
            h = (layer.o if granularity == "heads" else layer.down).register_forward_pre_hook(pre)
            try:
                return float(task.loss(model, batch[0]).detach())
            finally:
                h.remove()

        fd = (loss_at(1 + 1e-3) - loss_at(1 - 1e-3)) / 2e-3  # central difference (parts of the model run in fp32)
        assert g[unit].shape == (4,) and float(g[unit].sum()) == pytest.approx(fd, rel=2e-3, abs=1e-6)


def test_the_gradient_estimate_finds_the_cancelling_pair():
    model = cancelling_heads()
    task = SquaredReadout(model)
    g = mask_gradients(model, task, task.calibration_batches(None, 16, 8, 0), "heads")
    assert I_grad(g, (0, 0), (0, 1)) == pytest.approx(-1.0, abs=1e-9)  # their outputs cancel in every window
    assert A_grad(g, [(0, 0), (0, 1)]) == pytest.approx(0.0, abs=1e-9)  # together: nothing, to second order
    r = measure(model, task, "heads", units=8, pairs=100, random_sets=1)
    gr = r["gradient"]
    assert gr["windows"] == 16 and gr["pairs"]["within"]["max"] == pytest.approx(1.0, abs=1e-6)
    assert gr["tau_pairs_vs_exact"] is not None and gr["tau_pairs_vs_exact"] > 0  # the big pair ranks first in both
    with pytest.raises(CascadePruneError, match="heads and channels"):
        mask_gradients(model, task, [], "layers")


@pytest.mark.parametrize("args, match", [
    (["--granularity", "neurons"], "--granularity 'neurons'"),
    (["--units", "1"], "--units: must be >= 2"),
    (["--ratio", "0.9"], "--ratio: must be > 1"),
    (["--windows", "4", "--batch-size", "4"], "2 x --batch-size"),
    (["--granularity", "heads", "--criterion", "nope"], "no heads criterion 'nope'"),
    (["--granularity", "heads", "--criterion", "wanda_sp", "--mode", "naive"], "has no naive mode"),
    (["--criterion", "l1"], "--criterion needs one --granularity"),
    (["--calibration", "poetry:1"], "poetry"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, match):
    assert main(["sia", "tiny-llama", "--task", "lm@seq=16", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cascadeprune: error:") and match in err


def test_bad_model_and_task_exit_2(capsys):
    assert main(["sia", "no-such-model", "--task", "lm"]) == 2
    assert main(["sia", "tiny-llama", "--task", "lm:poetry"]) == 2
    errs = capsys.readouterr().err.strip().splitlines()
    assert len(errs) == 2 and all(e.startswith("cascadeprune: error:") for e in errs)


def test_json_schema(capsys):
    assert main(["sia", "tiny-llama", "--task", "lm@seq=16", "--units", "8", "--pairs", "6", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)  # strict JSON: no Infinity / NaN tokens
    assert rep["format"] == "cascadeprune-sia/1" and rep["model"] == "tiny-llama" and rep["task"] == "lm@seq=16"
    assert set(rep["static"]) == {"holds", "group_size", "gated_ffn", "reasons", "verdict"}
    assert rep["static"]["group_size"] == 4 and rep["static"]["verdict"] == "violated"
    assert rep["calibration"] == {"windows": 16, "batch_size": 8, "batches": 2, "seed": 42, "mix": None}
    assert set(rep["thresholds"]) >= {"additive", "compounding", "interaction_holds", "rank_drop_holds"}
    assert list(rep["granularities"]) == ["layers", "heads", "channels"]
    for g, r in rep["granularities"].items():
        assert r["granularity"] == g and r["verdict"] in GRADES and isinstance(r["advice"], str)
        assert isinstance(r["not_graded"], list) and len(r["single"]["deltas"]) == r["single"]["measured"]
        assert r["static"]["verdict"] in ("holds", "violated", "n/a")
        assert {"n", "measured", "median", "mean", "negative", "largest"} <= set(r["single"])
        assert set(r["pairs"]) == {"within", "across", "top"} and isinstance(r["within"], str)
        assert set(r["sets"]) == {"ratio", "params_to_remove", "criterion", "random"}
        if r["sets"]["criterion"] is not None:
            c = r["sets"]["criterion"]
            assert set(c) == {"units", "delta_loss", "sum_delta", "sum_delta_se", "coverage", "A", "determined",
                              "per_layer"}
            assert sum(c["per_layer"].values()) == c["units"]
        assert {"tau_halves", "tau_criterion_vs_delta", "weight_only"} <= set(r["rank"])
        # the flat schema beside the detail, equal to it
        assert r["interaction_within"] == r["pairs"]["within"].get("median") and r["tau_noise"] == r["rank"]["tau_halves"]
        assert {"additivity_median", "interaction_across", "tau_after", "additivity_criterion"} <= set(r)
        if g == "layers":
            assert r["gradient"] is None
        else:
            gr = r["gradient"]
            assert set(gr) == {"windows", "tau_single_vs_delta", "pairs", "tau_pairs_vs_exact", "sets",
                               "A_grade_agreement"} and gr["windows"] == 16
            assert all(set(x) == {"set", "units", "A", "A_grad", "graded"} for x in gr["sets"])
        assert all(set(s) == {"grade", "what"} and s["grade"] in GRADES for s in r["signals"])
        assert math.isfinite(r["loss_full"]) and r["evaluations"] > 0
    h = rep["granularities"]["heads"]
    assert h["within"] == "one KV group" and h["static"]["verdict"] == "violated" and h["units_total"] == 32


def test_text_output_names_every_granularity(capsys):
    assert main(["sia", "tiny-gpt2", "--task", "lm@seq=16", "--units", "6", "--pairs", "4", "--granularity",
                 "heads"]) == 0
    out = capsys.readouterr().out
    assert "static SIA    HOLDS" in out and "heads: 16 units" in out and "within one layer" in out
    assert "verdict" in out and "advice" in out


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_replaying_the_unchanged_prefix_equals_the_full_pass(family):
    """Layers before the first masked one return their recorded output; the losses must be the plain ones."""
    from cascadeprune.sia.measure import _Evaluator, plan_of
    from cascadeprune.surgery.masking import mask_plan

    model = tiny_model(family)
    task = get_task("lm@seq=16", model, source=f"tiny-{family}")
    batches = task.calibration_batches(None, 8, 4, 0)
    for g, units in [("heads", [(2, 1)]), ("channels", [(1, 5), (3, 7)]), ("layers", [(2, -1)])]:
        ev = _Evaluator(model, task, batches, g, progress=False)
        ev.base()
        assert ev.outputs is not None  # the self-check passed: the shortcut is on
        with torch.no_grad(), mask_plan(model, plan_of(g, units)):
            plain = sum(float(task.loss(model, b)) for b in batches) / len(batches)
        assert ev(units) == pytest.approx(plain, rel=1e-6, abs=1e-6)


# -- stored reports: `sia --out DIR` and `inspect --sia` ------------------------------------------------------

SMALL = ["--task", "lm@seq=16", "--granularity", "heads", "--units", "6", "--pairs", "4", "--random-sets", "1"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A saved tiny Llama with its report written into a folder inside its directory (MODEL/sia)."""
    from cascadeprune import save_model

    root = tmp_path_factory.mktemp("sia-stored")
    model_dir = save_model(tiny_model("llama"), root / "llama")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in model_dir.iterdir())
    assert main(["sia", str(model_dir), *SMALL, "--out", str(model_dir / "sia")]) == 0
    return model_dir, before


def test_out_writes_the_report_beside_the_model_files_untouched(stored, capsys):
    model_dir, before = stored
    after = sorted((p.name, p.stat().st_mtime_ns) for p in model_dir.iterdir() if p.name != "sia")
    assert after == before  # the model's own files: not one rewritten
    assert sorted(p.name for p in (model_dir / "sia").iterdir()) == ["sia.json", "sia.md", "sia.png"]
    rep = json.loads((model_dir / "sia" / "sia.json").read_text())
    assert rep["format"] == "cascadeprune-sia/1" and rep["fingerprint"]["family"] == "llama"
    assert list(rep["granularities"]) == ["heads"]
    md = (model_dir / "sia" / "sia.md").read_text()
    assert "| heads | **" in md and "## Full report" in md


def test_inspect_finds_the_stored_report_and_shows_both_verdicts(stored, capsys):
    model_dir, _ = stored
    rep = json.loads((model_dir / "sia" / "sia.json").read_text())
    verdict = rep["granularities"]["heads"]["verdict"]
    capsys.readouterr()
    assert main(["inspect", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert "SIA (static)  VIOLATED" in out and f"SIA (measured) {model_dir / 'sia' / 'sia.json'}" in out
    assert f"heads     {verdict.upper()}" in out and "(static violated)" in out
    for arg in (str(model_dir / "sia"), str(model_dir / "sia" / "sia.json")):  # the folder or the file
        assert main(["inspect", str(model_dir), "--sia", arg, "--json"]) == 0
        m = json.loads(capsys.readouterr().out)["sia_measured"]
        h = m["granularities"]["heads"]
        assert h["verdict"] == verdict and h["static"] == "violated" and m["task"] == "lm@seq=16"
        assert {"additivity_median", "interaction_within", "interaction_across", "tau_noise", "tau_after"} <= set(h)
    assert main(["inspect", "tiny-llama", "--json"]) == 0  # no report anywhere: null, and the text says how
    assert json.loads(capsys.readouterr().out)["sia_measured"] is None


def test_inspect_refuses_a_report_of_another_model(stored, tmp_path, capsys):
    from cascadeprune import save_model

    model_dir, _ = stored
    report = str(model_dir / "sia")
    other = save_model(tiny_model("llama", seed=1), tmp_path / "other")  # same architecture, other weights
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "plan.json").write_text('{"format": "cascadeprune-plan/1"}')
    cases = [(["inspect", "tiny-gpt2", "--sia", report], "a llama model; this one is gpt2"),
             (["inspect", str(other), "--sia", report], "weights differ"),
             (["inspect", str(model_dir), "--sia", str(tmp_path / "missing")], "no sia report there"),
             (["inspect", str(model_dir), "--sia", str(tmp_path / "bad.json")], "not readable JSON"),
             (["inspect", str(model_dir), "--sia", str(tmp_path / "plan.json")], "not a cascadeprune sia report")]
    assert main(["inspect", "tiny-llama", "--sia", report]) == 0  # the saved model IS tiny-llama (seed 0): accepted
    capsys.readouterr()
    for argv, match in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("cascadeprune: error:") and match in err, err


def test_found_reports_of_another_model_are_skipped_with_a_note(stored, tmp_path, capsys):
    import shutil

    model_dir, _ = stored
    other = tmp_path / "other"
    shutil.copytree(model_dir, other, ignore=shutil.ignore_patterns("sia"))
    shutil.copytree(model_dir / "sia", other / "gpt2-report")
    rep = json.loads((other / "gpt2-report" / "sia.json").read_text())
    rep["fingerprint"]["weights_sha256"] = "0" * 16  # as if measured on another checkpoint
    (other / "gpt2-report" / "sia.json").write_text(json.dumps(rep))
    assert main(["inspect", str(other)]) == 0
    out = capsys.readouterr().out
    assert "SIA (measured) no report of this model found" in out and "weights differ" in out


def test_out_refuses_the_model_directory_and_existing_folders(stored, capsys):
    model_dir, _ = stored
    for out, match in [(model_dir, "the model's directory or above it"),
                       (model_dir.parent, "the model's directory or above it"),
                       (model_dir / "sia", "already exists and is not empty")]:
        assert main(["sia", str(model_dir), *SMALL, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and match in err, err
