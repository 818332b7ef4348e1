"""The published baselines as methods of the engine (methods/baselines/): ratio, reload, FLAP's bias
compensation, ShortGPT's layer choice, recovery policy, the CLI. Tiny random models, seconds each."""

from __future__ import annotations

import copy

import pytest
import torch

from cascadeprune import load_model, save_model
from cascadeprune.accounting import block_params, dense_block_params
from cascadeprune.arch import resolve
from cascadeprune.calib import collect
from cascadeprune.cli import main
from cascadeprune.errors import CascadePruneError
from cascadeprune.methods.baselines import BASELINES
from cascadeprune.methods.baselines.shortgpt import reachable_ratios
from cascadeprune.methods.cascade import compress
from cascadeprune.methods.config import BASELINE_METHODS, CalibrationConfig, CompressConfig, RecipeError, \
    RecoveryConfig, StageConfig
from cascadeprune.plan import PruningPlan, applied_plan
from cascadeprune.storage.load import load_backbone
from cascadeprune.storage.sources import tiny_model
from cascadeprune.surgery import apply_plan, compensate_bias
from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier
from cascadeprune.tasks.bearing.protocols import WindowConfig, build_dataset
from cascadeprune.tasks.bearing.task import BearingTask
from conftest import check_compressed

WIN = WindowConfig(window=512, stride=1024)
CLASSES = ("normal", "inner", "outer", "ball")


@pytest.fixture(scope="module")
def ds():
    return build_dataset("synthetic", windows=WIN)


def classifier(backbone="gpt2-tiny", seed=0):
    torch.manual_seed(seed)
    return VibrationClassifier(load_backbone(backbone, seed=seed), CLASSES, FrontEndConfig(512, 16))


def config(ratio, method, steps=2, **kw):
    stages = [StageConfig(g, recovery=RecoveryConfig(steps=steps, lr=1e-3)) for g in ("layers", "heads", "channels")]
    return CompressConfig(ratio=ratio, method=method, stages=stages, seed=7, calibration=CalibrationConfig(n=32),
                          **kw).check()


def task(ds):
    return BearingTask("synthetic", CLASSES, windows=WIN, dataset=ds)


def test_every_baseline_is_a_method_of_the_config():
    assert set(BASELINES) == set(BASELINE_METHODS)
    for b in BASELINES.values():
        assert b.paper and b.describe().startswith(b.name)


CASES = [("magnitude", "gpt2-tiny", 2.5), ("magnitude", "llama-tiny", 8.7), ("wanda-sp", "gpt2-tiny", 8.7),
         ("wanda-sp", "llama-tiny", 2.5), ("llm-pruner", "gpt2-tiny", 2.5), ("llm-pruner", "llama-tiny", 8.7),
         ("flap", "gpt2-tiny", 2.5), ("flap", "gpt2-tiny", 8.7), ("flap", "llama-tiny", 2.5), ("flap", "llama-tiny", 8.7),
         ("shortgpt", "gpt2-tiny", 2.0),
         ("shortgpt", "llama-tiny", 4 / 3)]


@pytest.mark.parametrize("method,backbone,ratio", CASES)
def test_baseline_reaches_the_ratio_within_one_percent_and_reloads(method, backbone, ratio, ds, tmp_path):
    clf = classifier(backbone)
    dense = block_params(clf)
    res = compress(clf, task(ds), config(ratio, method), tmp_path / "run", progress=False)
    small = check_compressed(res, dense, ratio, torch.from_numpy(ds.x["test"][:8]), tmp_path)
    (stage,) = res["state"]["stages"]
    assert stage["granularity"] == method
    plan = applied_plan(resolve(small))
    if method == "shortgpt":  # layers only
        assert plan.layers and not plan.heads and not plan.channels
    else:  # heads and channels only
        assert not plan.layers and plan.channels


@pytest.mark.parametrize("method,steps", [("flap", 0), ("wanda-sp", 0), ("shortgpt", 0), ("magnitude", 6),
                                          ("llm-pruner", 6)])
def test_recovery_follows_the_authors_and_can_be_reported_both_ways(method, steps, ds, tmp_path):
    ratio = 2.0 if method == "shortgpt" else 2.5
    res = compress(classifier(), task(ds), config(ratio, method), tmp_path / "a", progress=False)
    assert res["state"]["stages"][0]["recovery_steps"] == steps  # summed budget 2 + 2 + 2, or none
    other = "none" if steps else "budget"
    res = compress(classifier(), task(ds), config(ratio, method, baseline_recovery=other), tmp_path / "b",
                   progress=False)
    assert res["state"]["stages"][0]["recovery_steps"] == 6 - steps


def test_baseline_recovery_is_refused_for_an_engine_method():
    with pytest.raises(RecipeError, match="baseline_recovery: only a baseline method"):
        config(2.0, "cascade", baseline_recovery="none")


def _batches(model, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, model.config.vocab_size, (2, 16), generator=g) for _ in range(n)]


def _mean_output(model, module, batches) -> torch.Tensor:
    outs = []
    h = module.register_forward_hook(lambda m, a, o: outs.append(o.detach().reshape(-1, o.shape[-1])))
    with torch.no_grad():
        for b in batches:
            model(b)
    h.remove()
    return torch.cat(outs).double().mean(0)


@pytest.mark.parametrize("plan", [PruningPlan(channels={0: set(range(0, 96, 3))}), PruningPlan(heads={0: {1, 3}})],
                         ids=["channels", "heads"])
def test_flap_bias_compensation_keeps_the_pruned_projections_mean_output(plan):
    model = tiny_model("gpt2")
    batches = _batches(model)
    l0 = resolve(model).layers[0]
    proj = "down" if plan.channels else "o"
    before = _mean_output(model, getattr(l0, proj), batches)
    stats = collect(model, batches)
    plain = apply_plan(model, plan)
    pruned = copy.deepcopy(model)
    compensate_bias(pruned, plan, {0: stats.o_in[0].mean, 1: stats.o_in[1].mean},
                    {0: stats.down_in[0].mean, 1: stats.down_in[1].mean})
    apply_plan(pruned, plan, inplace=True)
    after = _mean_output(pruned, getattr(resolve(pruned).layers[0], proj), batches)
    without = _mean_output(plain, getattr(resolve(plain).layers[0], proj), batches)
    assert torch.allclose(after, before, atol=1e-5)
    assert (without - before).abs().max() > 100 * (after - before).abs().max()  # it did something


def test_flap_refuses_a_model_whose_projections_have_no_bias_and_no_switch_for_one():
    model = tiny_model("mistral")  # MistralConfig has no attention_bias / mlp_bias
    stats = collect(model, _batches(model))
    s = stats.structure
    means = {l.orig_index: stats.down_in[i].mean for i, l in enumerate(s.layers)}
    weights = [p.clone() for p in model.parameters()]
    with pytest.raises(CascadePruneError, match="bias compensation needs a bias on the FFN down projection"):
        compensate_bias(model, PruningPlan(channels={0: {1, 2}}), means, means)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))  # nothing changed


@pytest.mark.parametrize("plan", [PruningPlan(channels={i: set(range(i % 3, 48, 3)) for i in range(4)}),
                                  PruningPlan(heads={i: set(range(4 * (i % 2), 4 * (i % 2) + 4)) for i in range(4)})],
                         ids=["channels", "heads"])  # every layer alike: a stock loader can rebuild it
def test_flap_on_llama_turns_the_configs_bias_switch_on_and_a_stock_loader_keeps_the_compensation(plan, tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_model("llama")
    batches = _batches(model)
    layer = resolve(model).layers[0]
    proj = "o" if plan.heads else "down"
    before = _mean_output(model, getattr(layer, proj), batches)
    stats = collect(model, batches)
    compensate_bias(model, plan, {i: stats.o_in[i].mean for i in range(4)},
                    {i: stats.down_in[i].mean for i in range(4)})
    key = "attention_bias" if plan.heads else "mlp_bias"
    assert getattr(model.config, key) is True and not getattr(model.config, {"attention_bias": "mlp_bias",
                                                                             "mlp_bias": "attention_bias"}[key])
    model = apply_plan(model, plan, inplace=True)
    assert model.config.cascadeprune["stock_loadable"]
    after = _mean_output(model, getattr(resolve(model).layers[0], proj), batches)
    assert torch.allclose(after, before, atol=1e-5)  # the compensation is in the new bias
    save_model(model, tmp_path)
    stock = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert getattr(stock.config, key) is True
    with torch.no_grad():
        assert torch.allclose(stock(batches[0]).logits, model.eval()(batches[0]).logits, atol=1e-5)


def test_shortgpt_removes_the_layer_made_an_identity():
    model = tiny_model("gpt2")  # 4 layers
    l2 = resolve(model).layers[2]
    with torch.no_grad():  # attention and MLP add nothing to the residual stream: the block is the identity
        for proj in (l2.o, l2.down):
            proj.weight.zero_()
            proj.bias.zero_()
    n = len(resolve(model).layers)
    target = round(dense_block_params(model) * (n - 1) / n)
    BASELINES["shortgpt"].cut(model, _batches(model), target, None)
    assert applied_plan(resolve(model)).layers == frozenset({2})


def test_shortgpt_refuses_a_ratio_whole_layers_cannot_reach():
    model = tiny_model("gpt2")
    assert [round(r, 3) for r in reachable_ratios(model)] == [1.333, 2.0, 4.0]
    with pytest.raises(CascadePruneError, match=r"ratio 2.5 is not within 1 % .*\(1.33, 2, 4\)"):
        BASELINES["shortgpt"].cut(model, _batches(model), round(dense_block_params(model) / 2.5), None)


def test_compress_cli_runs_a_baseline(tmp_path, capsys):
    save_model(classifier(), tmp_path / "clf")
    out = tmp_path / "run"
    assert main(["compress", str(tmp_path / "clf"), "--task", "synthetic", "--ratio", "3", "--out", str(out),
                 "--method", "wanda-sp", "--recovery-steps", "1", "--set", "baseline_recovery=budget",
                 "--set", "calibration.n=16", "--json"]) == 0
    assert abs(float(capsys.readouterr().out.split('"ratio_achieved": ')[1].split(",")[0]) / 3 - 1) <= 0.01
    small = load_model(out / "model")
    assert not applied_plan(resolve(small)).layers


def test_the_frontier_benchmarks_commands_give_every_method_the_cascades_budget():
    from cascadeprune.cli import build_parser
    from cascadeprune.methods.cascade import baseline_recovery, summed_recovery
    from cascadeprune.methods.config import build_config

    from benchmarks import frontier

    def cfg(method):
        a = vars(build_parser().parse_args(frontier.command({"method": method, "ratio": 8.7, "seed": 42}, 0.5)[1:]))
        return build_config(a["recipe"], a["sets"], ratio=a["ratio"], method=a["method"], seed=a["seed"])

    cascade = cfg("cascade")
    total = sum(st.recovery.steps for st in cascade.stages)
    assert total == 150 and cascade.method == "cascade"
    for method, steps in [("llm-pruner", 150), ("magnitude", 150), ("flap", None), ("flap+budget", 150),
                          ("wanda-sp", None), ("wanda-sp+budget", 150)]:
        c = cfg(method)
        assert c.method == method.split("+")[0] and c.calibration == cascade.calibration and c.seed == 42
        rec = baseline_recovery(c)
        assert (rec.steps if rec.method != "none" else None) == steps
        assert summed_recovery(c).steps == total
    assert [r["ratio"] for r in frontier.runs([1.3, 8.7], ["shortgpt"], [42], False)] == [4 / 3]
