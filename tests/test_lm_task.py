"""The causal-LM task: corpus splits, calibration mixes, perplexity, recovery, the CLI end to end.

Tiny random Llama with the byte-level tokenizer (vocabulary 128); seconds, no downloads."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cascadeprune import load_model
from cascadeprune.cli import main
from cascadeprune.methods.config import RecoveryConfig
from cascadeprune.storage.sources import tiny_model
from cascadeprune.task import Task
from cascadeprune.tasks import get_task
from cascadeprune.tasks.lm.corpus import CorpusError, describe, load_corpus
from cascadeprune.tasks.lm.task import LMTask, parse_spec

SPEC = "lm@seq=32,eval=4,val=2"


@pytest.fixture(scope="module")
def task():
    return get_task(SPEC, tiny_model("llama"), source="tiny-llama")


def test_the_lm_task_is_a_task(task):
    assert isinstance(task, Task) and task.metric == "perplexity" and task.higher_is_better is False
    assert task.domains == ("prose", "code", "technical")


def test_splits_are_disjoint_and_cover_every_block():
    c = load_corpus()
    seen = {}
    for b in c.all_blocks:
        key = (b.domain, b.doc, b.index)
        assert key not in seen, f"block {key} in two splits"
        seen[key] = b.split
    for d in ("prose", "code", "technical"):
        assert {b.split for b in c.all_blocks if b.domain == d} == {"train", "calibration", "val", "test"}
    info = describe(("code",))
    total = sum(v["chars"] for v in info["domains"]["code"]["splits"].values())
    assert total == sum(doc["chars"] for doc in info["domains"]["code"]["documents"])  # nothing lost, nothing twice
    assert all(doc["licence"] and doc["sha256"] for d in info["domains"].values() for doc in d["documents"])


def test_verbatim_repeats_across_splits_are_rare():
    """Blocks are disjoint; identical windows across splits come only from repeated text (indentation runs,
    licence boilerplate). Measured with 32-byte windows: at most 3.2 % (prose calibration), 0.5 % of code test."""
    from cascadeprune.tasks.lm.tokenizer import ByteTokenizer

    t = LMTask(("prose", "code", "technical"), ByteTokenizer(128), seq=32, eval_windows=10**6, val_windows=10**6)
    for d in t.domains:
        train = {tuple(r.tolist()) for r in t.windows["train"][d]}
        for split in ("calibration", "val", "test"):
            rows = [tuple(r.tolist()) for r in t.windows[split][d]]
            assert sum(r in train for r in rows) / len(rows) < 0.05, (d, split)


def test_calibration_draws_the_mix_from_the_calibration_split_only(task):
    batches = task.calibration_batches({"prose": 3, "code": 1}, n=16, batch_size=4, seed=0)
    assert [len(b) for b in batches] == [4, 4, 4, 4]
    rows = [tuple(r.tolist()) for b in batches for r in b]
    prose = {tuple(r.tolist()) for r in task.windows["calibration"]["prose"]}
    code = {tuple(r.tolist()) for r in task.windows["calibration"]["code"]}
    assert sum(r in prose for r in rows) == 12 and sum(r in code for r in rows) == 4
    again = task.calibration_batches({"prose": 3, "code": 1}, n=16, batch_size=4, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    with pytest.raises(CorpusError, match="calibration domain 'poetry' is not in task"):
        task.calibration_batches({"poetry": 1}, 4, 4, 0)


def test_perplexity_per_domain_is_exp_of_the_mean_next_token_nll(task):
    model = tiny_model("llama")
    m = task.evaluate(model, "test")
    ids = task.windows["test"]["code"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    assert m["perplexity_per_domain"]["code"] == pytest.approx(math.exp(nll.item()), rel=1e-5)
    logs = [math.log(v) for v in m["perplexity_per_domain"].values()]
    assert m["perplexity"] == pytest.approx(math.exp(sum(logs) / 3), rel=1e-9)


def test_recovery_lowers_the_next_token_loss(task):
    model = tiny_model("llama")
    before = task.evaluate(model, "val")["perplexity"]
    rep = task.train(model, RecoveryConfig(method="full", steps=15, lr=1e-2, batch_size=8), seed=0, progress=False)
    assert rep["steps"] == 15 and task.evaluate(model, "val")["perplexity"] < 0.8 * before


@pytest.mark.parametrize("spec, match", [("lm:poetry", "lm domain 'poetry' is not shipped"),
                                         ("lm@seqq=3", "option 'seqq=3'"), ("lm:code,code", "named twice"),
                                         ("lm@seq=1", "seq must be >= 2")])
def test_bad_specs_name_the_part_at_fault(spec, match):
    with pytest.raises(CorpusError, match=match):
        parse_spec(spec)


def test_compress_eval_and_describe_from_the_cli(tmp_path, capsys):
    out = tmp_path / "c"
    args = ["compress", "tiny-llama", "--task", SPEC, "--ratio", "1.5", "--out", str(out),
            "--calibration", "prose:0.5,code:0.3,technical:0.2", "--recovery-steps", "2",
            "--set", "calibration.n=8", "--set", "calibration.batch_size=4", "--set", "stages.*.recovery.batch_size=4"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert abs(report["ratio_achieved"] / 1.5 - 1) <= 0.01 and report["metric"] == "perplexity"
    assert report["config"]["calibration"]["mix"] == {"prose": 0.5, "code": 0.3, "technical": 0.2}
    assert set(report["test"]["perplexity_per_domain"]) == {"prose", "code", "technical"}
    assert {"perplexity_pruned", "perplexity_recovered", "val_perplexity_recovered", "test_recovered",
            "process_peak_rss_mb"} <= set(report["stages"][0])
    capsys.readouterr()
    assert main(["eval", str(out / "model"), "--task", SPEC, "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["perplexity_per_domain"] == pytest.approx(report["test"]["perplexity_per_domain"], rel=1e-6)
    assert main(["eval", str(out / "model"), "--task", SPEC]) == 0
    text = capsys.readouterr().out
    assert "perplexity" in text and all(d in text for d in ("prose", "code", "technical"))
    assert main(["data", "describe", "lm:code", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert list(info["domains"]) == ["code"] and info["domains"]["code"]["splits"]["test"]["blocks"] > 0


def test_the_compressed_lm_reloads_with_identical_logits(tmp_path):
    assert main(["compress", "tiny-llama", "--task", SPEC, "--ratio", "2", "--out", str(tmp_path / "c"),
                 "--recovery-steps", "1", "--set", "calibration.n=4", "--set", "stages.*.recovery.batch_size=2"]) == 0
    a = load_model(tmp_path / "c" / "model")
    b = load_model(tmp_path / "c" / "checkpoints" / "stage-02")
    ids = torch.randint(0, 128, (2, 16))
    with torch.no_grad():
        assert torch.equal(a(input_ids=ids).logits, b(input_ids=ids).logits)
    assert (tmp_path / "c" / "model" / "cascadeprune_tokenizer.json").is_file()


def test_a_classifier_task_on_a_causal_lm_is_refused_in_one_line(tmp_path, capsys):
    assert main(["compress", "tiny-llama", "--task", "synthetic", "--ratio", "2", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a classifier directory" in err and "--task lm" in err and len(err.splitlines()) == 1
