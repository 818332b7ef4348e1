"""The user's own text for --task lm (``lm@data=PATH``): domains, the leakage-free split, describe,
one-line refusals of bad files, and no silent byte-level tokenizer for a model that has none."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cascadeprune.cli import main
from cascadeprune.errors import CascadePruneError
from cascadeprune.storage.sources import tiny_model
from cascadeprune.tasks import get_task
from cascadeprune.tasks.lm.corpus import BLOCK_CHARS, SPLIT_OF_BLOCK
from cascadeprune.tasks.lm.task import parse_spec
from cascadeprune.tasks.lm.user_data import load_user_corpus

WORDS = "pump bearing valve motor seal flow pressure alarm check replace inspect noise heat oil".split()


def _text(n_chars: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    words = rng.choice(WORDS, size=n_chars // 4)
    return " ".join(words)[:n_chars]


@pytest.fixture
def data(tmp_path):
    """manuals.txt (one document) and tickets/ (two .jsonl files, one line each)."""
    d = tmp_path / "mydata"
    (d / "tickets").mkdir(parents=True)
    (d / "manuals.txt").write_text(_text(25_000, 0))
    (d / "tickets" / "a.jsonl").write_text(json.dumps({"text": _text(20_000, 1), "doc": "t1"}) + "\n")
    (d / "tickets" / "b.jsonl").write_text(json.dumps(_text(19_000, 2)) + "\n")
    return d


def test_domains_and_split_rule(data):
    corpus, docs = load_user_corpus(data)
    assert corpus.domains == ("manuals", "tickets")
    assert len(docs["tickets"]) == 2
    for b in corpus.all_blocks:  # the shipped corpus's rule, block by block
        assert b.split == SPLIT_OF_BLOCK[b.index % 10] and b.end - b.start <= BLOCK_CHARS
    for d in corpus.domains:
        for s in ("train", "calibration", "val", "test"):
            assert corpus.blocks(s, d), (d, s)
    # no character range of a document is in two blocks
    spans = {}
    for b in corpus.all_blocks:
        for other in spans.get((b.domain, b.doc), []):
            assert b.end <= other[0] or b.start >= other[1]
        spans.setdefault((b.domain, b.doc), []).append((b.start, b.end))


def test_task_on_user_data(data):
    spec = f"lm:tickets@data={data},seq=16,eval=4,val=2"
    assert parse_spec(spec)[0] == ("tickets",)
    task = get_task(spec, tiny_model("llama"), source="tiny-llama")
    assert task.domains == ("tickets",)
    assert len(task.windows["test"]["tickets"]) == 4
    r = task.evaluate(tiny_model("llama"), "test")
    assert set(r["perplexity_per_domain"]) == {"tickets"} and r["perplexity"] > 1


def test_describe_cli(data, capsys):
    assert main(["data", "describe", f"lm@data={data}", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["domains"]) == {"manuals", "tickets"}
    m = info["domains"]["manuals"]["splits"]
    assert sum(v["chars"] for v in m.values()) == 25_000
    assert m["train"]["blocks"] == 6 + 3 and m["test"]["blocks"] == 2  # 13 blocks: 0-5, 10-12 train; 8, 9 test
    assert main(["data", "describe", f"lm@data={data}"]) == 0
    assert "tickets" in capsys.readouterr().out


@pytest.mark.parametrize("content, why", [(b"", "empty file"), (b"abc\0\x01\x02" * 5000, "binary"),
                                          (b"\xff\xfe" + b"a" * 30000, "not UTF-8"), (b"short text", "too short"),
                                          (b'{"txt": 1}\n', "a line must be")])
def test_bad_files_one_line_exit_2(tmp_path, capsys, content, why):
    f = tmp_path / ("bad.jsonl" if b"txt" in content else "bad.txt")
    f.write_bytes(content)
    assert main(["data", "describe", f"lm@data={f}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(f) in err and why in err


def test_bad_spec(data, capsys):
    assert main(["data", "describe", f"lm:nope@data={data}"]) == 2
    assert "'nope'" in capsys.readouterr().err
    assert main(["data", "describe", f"lm@data={data}/missing"]) == 2
    assert "no such file" in capsys.readouterr().err


def _llama_512():
    """A tiny llama with more tokens than byte values: a real tokenizer is needed."""
    import transformers

    from cascadeprune.storage.sources import TINY_CONFIGS

    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**dict(TINY_CONFIGS["llama"][1], vocab_size=512)))


def test_model_without_tokenizer_refused(tmp_path, data):
    from cascadeprune.storage import save_model

    m = _llama_512().eval()
    save_model(m, tmp_path / "plain")  # a local directory: no tokenizer files
    with pytest.raises(CascadePruneError, match="has no tokenizer"):
        get_task("lm@seq=16", m, source=str(tmp_path / "plain"))
    t = get_task(f"lm@data={data},seq=16,tokenizer=bytes", m, source=str(tmp_path / "plain"))
    assert t.tokenizer.kind == "bytes"
    with pytest.raises(CascadePruneError, match="tokenizer=.*not a tokenizer"):
        get_task(f"lm@tokenizer={tmp_path}", m, source=str(tmp_path / "plain"))
    small = tiny_model("llama")  # 128 tokens: a byte-level stand-in loses nothing, allowed
    save_model(small, tmp_path / "small")
    assert get_task("lm@seq=16,eval=2,val=1", small, source=str(tmp_path / "small")).tokenizer.kind == "bytes"
