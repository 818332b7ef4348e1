"""Method auto in the benchmarks: the fairness rule and the record keys both drivers share.

Fairness rule (issue 33): every recovering baseline is also run with the recovery recipe and budget that auto
ended up using at the same ratio and seed (LoRA targets, rank, learning rate, LoRA or distillation; the same
summed steps and data), as method ``<baseline>+auto-recipe``, so that a gain is the method's, not the recovery's.
Auto's split schedule (half the steps after the coarse cut, half after the channels) has no counterpart in a
one-cut baseline: the baseline recovers once, at the end, and the record says so (``recovery_schedule``).

    auto_recipe_sets(records, ratio=2.0, seed=42)   # ["baseline_recovery=budget", "stages.*.recovery.targets=all", ...]
    recovery_keys(report)                            # the record keys: recovery_targets, recovery_rank, recovery_lr, ...
"""

from __future__ import annotations

SUFFIX = "+auto-recipe"


def auto_record(records: list[dict], ratio: float, seed: int, **match) -> dict | None:
    """The latest auto record at ``ratio`` and ``seed`` (and any other key = value given)."""
    hits = [r for r in records if r.get("method") == "auto" and abs(r["ratio_target"] - ratio) < 1e-6
            and r["seed"] == seed and all(r.get(k) == v for k, v in match.items())]
    return hits[-1] if hits else None


def auto_recipe_sets(records: list[dict], ratio: float, seed: int, baseline: bool = True,
                     **match) -> list[str] | None:
    """``--set`` overrides giving a method auto's recovery recipe (None: no auto record to copy yet). A baseline
    also gets the recovery budget (``baseline_recovery=budget``); the cascade (``baseline=False``) recovers after
    each stage already, with the same summed steps, and keeps that split schedule."""
    a = auto_record(records, ratio, seed, **match)
    if a is None:
        return None
    method = a["recovery_method"] if a["recovery_method"] in ("lora", "distill") else "none"
    return (["baseline_recovery=budget"] if baseline else []) + [f"stages.*.recovery.method={method}",
            f"stages.*.recovery.targets={a['recovery_targets']}", f"stages.*.recovery.rank={a['recovery_rank']}",
            f"stages.*.recovery.lr={a['recovery_lr']}"]


def recovery_keys(report: dict) -> dict:
    """The recovery recipe a run ended up with, and for auto the decision log's summary."""
    log = report.get("auto")
    if log:
        ch = log["chosen"]["recovery"]
        return {"recovery_method": ch["method"], "recovery_targets": ch["targets"], "recovery_rank": ch["rank"],
                "recovery_lr": ch["lr"], "recovery_schedule": ch["schedule"],
                "auto": {"summary": log["summary"], "decisions": [{k: d[k] for k in ("decision", "chosen")}
                                                                  for d in log["decisions"]],
                         "granularities": log["chosen"]["granularities"], "criteria": log["chosen"]["criteria"],
                         "shares": log["chosen"]["shares"], "profile": log["chosen"]["profile"],
                         "candidates": len(log["candidates"]), "evaluations": log["budget"]["evaluations_used"],
                         "search_budget": log["budget"]["spec"], "search_s": log["wall_s"]["search"],
                         "total_s": log["wall_s"]["total"]}}
    rec = report["config"]["stages"][-1]["recovery"]
    single = report["method"] != "cascade" and report["method"] != "simultaneous"
    return {"recovery_method": rec["method"], "recovery_targets": rec["targets"], "recovery_rank": rec["rank"],
            "recovery_lr": rec["lr"], "recovery_schedule": "end" if single else "split"}
