"""The causal-LM task: a Hugging Face causal LM judged by perplexity per text domain.

Spec ``lm[:DOMAINS][@seq=N,eval=N,val=N,data=PATH,tokenizer=PATH]``: ``lm`` alone is every shipped
domain (prose, code, technical) with 128-token windows, 32 test and 8 validation windows per domain;
``data=PATH`` is the user's own text instead (:mod:`cascadeprune.tasks.lm.user_data`, same split rule),
``tokenizer=PATH`` a tokenizer for a model directory that has none (``bytes``: the byte-level stand-in). Calibration
windows come from the corpus's calibration split only, mixed by weight (``{"prose": 0.5,
"code": 0.3, "technical": 0.2}``; default: equal weights over the task's domains); recovery trains
on next-token loss over the train split of every task domain; evaluation reports perplexity per
domain and ``perplexity`` = exp(mean over domains of the per-domain mean NLL), i.e. the geometric
mean of the domain perplexities, each domain weighted equally.

Example::

    task = LMTask.from_spec("lm:prose,code@seq=64", model, source="smollm2-135m")
    task.evaluate(model, "test")["perplexity_per_domain"]
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from cascadeprune.devices import resolve_device
from cascadeprune.tasks.lm.corpus import CorpusError, load_corpus, parse_domains
from cascadeprune.tasks.lm.tokenizer import tokenizer_for

OPTIONS = {"seq": 128, "eval": 32, "val": 8}
PATH_OPTIONS = ("data", "tokenizer")  # the user's text (tasks.lm.user_data) and an explicit tokenizer


def parse_spec(spec: str) -> tuple[tuple[str, ...], dict]:
    """``"lm:prose,code@seq=64"`` -> (("prose", "code"), {"seq": 64, "eval": 32, "val": 8, "data": None, ...}).

    ``lm:manuals@data=my_text/,tokenizer=tok/``: the domains come from the user's files."""
    if spec != "lm" and not spec.startswith(("lm:", "lm@")):
        raise CorpusError(f"task {spec!r} is not an lm task (lm[:DOMAINS][@seq=N,eval=N,val=N,data=PATH,tokenizer=PATH])")
    body = spec[2:].lstrip(":")
    names, _, opts = body.partition("@")
    options: dict = dict(OPTIONS, **{k: None for k in PATH_OPTIONS})
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        if key in PATH_OPTIONS and value:
            options[key] = value
            continue
        if key not in OPTIONS or not value.isdigit() or int(value) < 1:
            raise CorpusError(f"task {spec!r}: option {item!r}; options are "
                              f"{', '.join(f'{k}=<positive int>' for k in OPTIONS)}, data=PATH, tokenizer=PATH")
        options[key] = int(value)
    if options["seq"] < 2:
        raise CorpusError(f"task {spec!r}: seq must be >= 2 (next-token prediction)")
    if options["data"] is not None:
        from cascadeprune.tasks.lm.user_data import domain_files

        return parse_domains(names, tuple(domain_files(options["data"])), f"in data={options['data']}"), options
    return parse_domains(names), options


def load_spec_corpus(spec: str):
    """The corpus ``spec`` names (shipped, or the user's ``data=PATH``), its domains' documents, and where."""
    domains, opts = parse_spec(spec)
    if opts["data"] is None:
        return load_corpus(domains), None, None
    from cascadeprune.tasks.lm.user_data import load_user_corpus

    corpus, docs = load_user_corpus(opts["data"], domains)
    return corpus, docs, str(Path(opts["data"]).resolve())


def check_mix(spec: str, mix: dict[str, float] | None) -> None:
    """Refuse calibration domains the task spec does not have, before any model is loaded."""
    domains, _ = parse_spec(spec)
    bad = [d for d in (mix or {}) if d not in domains]
    if bad:
        raise CorpusError(f"calibration.mix: domain {bad[0]!r} is not in task {spec} (domains: {', '.join(domains)})")


def _windows(token_lists: list[list[int]], seq: int) -> torch.Tensor:
    """Non-overlapping windows of ``seq`` tokens, each inside one block (no window spans two splits)."""
    rows = [ids[i : i + seq] for ids in token_lists for i in range(0, len(ids) - seq + 1, seq)]
    return torch.tensor(rows, dtype=torch.long) if rows else torch.zeros(0, seq, dtype=torch.long)


def _spread(x: torch.Tensor, k: int) -> torch.Tensor:
    """At most ``k`` rows, evenly spaced (covers every document, deterministic)."""
    if len(x) <= k:
        return x
    return x[np.linspace(0, len(x) - 1, k).round().astype(int)]


def next_token_loss(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=ids, use_cache=False).logits[:, :-1]
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


class LMTask:
    metric = "perplexity"
    higher_is_better = False

    def __init__(self, domains: tuple[str, ...], tokenizer, seq: int = 128, eval_windows: int = 32,
                 val_windows: int = 8, name: str | None = None, corpus=None):
        self.domains, self.tokenizer, self.seq = tuple(domains), tokenizer, seq
        self.name = name or f"lm:{','.join(self.domains)}"
        corpus = corpus if corpus is not None else load_corpus(self.domains)
        self.windows: dict[str, dict[str, torch.Tensor]] = {}
        for split in ("train", "calibration", "val", "test"):
            self.windows[split] = {}
            for d in self.domains:
                w = _windows([tokenizer.encode(b.text) for b in corpus.blocks(split, d)], seq)
                if len(w) == 0:
                    raise CorpusError(f"lm domain {d!r}: no {seq}-token window in its {split} split (task {self.name}); "
                                      f"use a smaller seq or more text")
                if split == "test":
                    w = _spread(w, eval_windows)
                elif split == "val":
                    w = _spread(w, val_windows)
                self.windows[split][d] = w

    @classmethod
    def from_spec(cls, spec: str, model: nn.Module, source=None) -> "LMTask":
        domains, opts = parse_spec(spec)
        if not hasattr(model, "lm_head") and not hasattr(model, "get_output_embeddings"):
            raise CorpusError(f"task {spec!r} needs a causal LM (a model with an LM head)")
        tok = tokenizer_for(source, model, explicit=opts["tokenizer"])  # before reading data: the cheaper refusal
        corpus, _, _ = load_spec_corpus(spec)
        return cls(domains, tok, opts["seq"], opts["eval"], opts["val"], name=spec, corpus=corpus)

    # -- the Task interface -------------------------------------------------------------------

    def calibration_batches(self, mix: dict[str, float] | None, n: int, batch_size: int, seed: int) -> list:
        mix = mix or {d: 1.0 for d in self.domains}
        bad = [d for d in mix if d not in self.windows["calibration"]]
        if bad:
            raise CorpusError(f"calibration domain {bad[0]!r} is not in task {self.name} "
                              f"(domains: {', '.join(self.domains)})")
        if any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
            raise CorpusError(f"calibration mix {mix}: weights must be >= 0 with a positive sum")
        rng = np.random.default_rng(seed)
        weights = np.array(list(mix.values()), dtype=np.float64)
        counts = np.floor(weights / weights.sum() * n).astype(int)
        counts[np.argmax(weights)] += n - counts.sum()
        parts = []
        for d, k in zip(mix, counts):
            pool = self.windows["calibration"][d]
            if k:
                parts.append(pool[rng.choice(len(pool), size=k, replace=len(pool) < k)])
        x = torch.cat(parts)[torch.from_numpy(rng.permutation(n))]
        return [x[i : i + batch_size] for i in range(0, n, batch_size)]

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        return next_token_loss(model, batch)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int = 8) -> dict:
        if split not in ("val", "test"):
            raise CorpusError(f"lm split {split!r}: evaluate on val or test (train and calibration feed the engine)")
        was_training = model.training
        model.eval()
        dev = next(model.parameters()).device
        nll = {}
        for d, w in self.windows[split].items():
            total, count = 0.0, 0
            for i in range(0, len(w), batch_size):
                ids = w[i : i + batch_size].to(dev)
                total += float(next_token_loss(model, ids)) * ids[:, 1:].numel()
                count += ids[:, 1:].numel()
            nll[d] = total / count
        model.train(was_training)
        per = {d: math.exp(v) for d, v in nll.items()}
        return {"perplexity": math.exp(sum(nll.values()) / len(nll)), "perplexity_per_domain": per,
                "nll_per_domain": nll, "tokens_per_domain": {d: int(w[:, 1:].numel()) for d, w in
                                                             self.windows[split].items()}, "split": split}

    def train(self, model: nn.Module, cfg, seed: int, teacher: nn.Module | None = None, progress: bool = True,
              desc: str = "recover") -> dict:
        """Next-token recovery on the train split of every task domain (``cfg``: a RecoveryConfig).

        AdamW on the parameters that require grad (LoRA adapters when the engine added them), linear
        warm-up then cosine decay, gradient clipping at 1. ``keep: best_val`` validates at every quarter
        of the budget and keeps the state with the lowest validation perplexity; ``last`` keeps the end."""
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        pool = torch.cat(list(self.windows["train"].values()))
        total = cfg.steps or max(1, math.ceil((cfg.epochs or 0) * len(pool) / cfg.batch_size))
        dev, home = resolve_device(cfg.device), next(model.parameters()).device
        model.to(dev)
        if teacher is not None:
            teacher.to(dev)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        warm = min(10, max(1, total // 10))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        checks = {max(1, round(total * q / 4)) for q in (1, 2, 3, 4)} if cfg.keep == "best_val" else set()
        best, best_state = float("inf"), None
        t0 = time.perf_counter()
        model.train()
        bar = tqdm(total=total, desc=desc, unit="step", disable=not progress, dynamic_ncols=True, mininterval=1.0)
        for step in range(1, total + 1):
            ids = pool[torch.randint(len(pool), (cfg.batch_size,), generator=gen)].to(dev)
            logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
            if teacher is not None:
                with torch.no_grad():
                    t_logits = teacher(input_ids=ids, use_cache=False).logits[:, :-1].float()
                T = cfg.temperature
                kd = nn.functional.kl_div(nn.functional.log_softmax(logits / T, -1).flatten(0, 1),
                                          nn.functional.log_softmax(t_logits / T, -1).flatten(0, 1),
                                          reduction="batchmean", log_target=True) * T**2
                loss = (1 - cfg.distill_alpha) * loss + cfg.distill_alpha * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if step in checks:
                val = self.evaluate(model, "val")["perplexity"]
                model.train()
                if val < best:
                    best = val
                    # only what trains can differ from the start: copy those tensors, not the whole model
                    best_state = {n: q.detach().clone() for n, q in model.named_parameters() if q.requires_grad}
        bar.close()
        if best_state is not None:
            with torch.no_grad():
                for n, q in model.named_parameters():
                    if n in best_state:
                        q.copy_(best_state[n])
        model.to(home).eval()
        if teacher is not None:
            teacher.to(home)
        return {"steps": total, "wall_s": time.perf_counter() - t0, "best_val_perplexity": best}
