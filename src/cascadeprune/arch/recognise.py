"""Recognise a family that has no table entry from its config and module tree.

For a ``model_type`` missing from :data:`~cascadeprune.arch.table.FAMILIES`, every distinct
layout in the table is tried as a template: its layer list, its config keys, every path of one
layer, and the shapes its dims imply. A template matches only if it also *describes every
parameter* of each layer (a Llama template does not match a model with q/k norms it knows
nothing about) and every module it names exists (a Gemma-2 template with four norms does not
match a Llama-like model with two). Exactly one matching layout gives a candidate spec, which a verifier (registered
by :mod:`cascadeprune.surgery`) checks on the spot: a tiny random model of the same class, pruned
and masked with the same plan, must agree. The result is cached per ``model_type`` for the
process and announced with a one-line notice. No match, two matches or a failed check raise
:class:`~cascadeprune.errors.UnsupportedArchitectureError` naming what did not match.

Example::

    spec = recognise(model)        # e.g. xlm-roberta -> the bert layout
    spec.origin                    # "recognised (layout of bert, roberta)"
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from cascadeprune.arch.table import FAMILIES, FamilySpec
from cascadeprune._lazy import load_ref
from cascadeprune.errors import CascadePruneError, UnsupportedArchitectureError

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

RECOGNISED: dict[str, FamilySpec] = {}  # model_type -> verified spec (this process)
_PENDING: dict[str, FamilySpec] = {}  # candidates under verification (their check resolves them)
# verifier(model, spec) raises with a reason when pruning != masking for spec on model's class; the check
# needs surgery, which sits above arch: cascadeprune.wiring registers it (as "module:function", imported on use)
_verifier: Callable[[nn.Module, FamilySpec], None] | str | None = None


def register_verifier(fn: Callable[[nn.Module, FamilySpec], None] | str) -> None:
    """Set the equivalence check run on every candidate (a function or its ``"module:function"``)."""
    global _verifier
    _verifier = fn


def layouts() -> list[tuple[FamilySpec, list[str]]]:
    """Distinct layouts of the table, each with the families that use it (sorted by name: the
    order of messages does not depend on the order of registration)."""
    groups: list[tuple[FamilySpec, list[str]]] = []
    for name, spec in sorted(FAMILIES.items()):
        for template, names in groups:
            if template.layout() == spec.layout():
                names.append(name)
                break
        else:
            groups.append((spec, [name]))
    return groups


def recognise(model: nn.Module) -> FamilySpec:
    """The verified spec for ``model``'s unlisted family, built once per ``model_type``."""
    model_type = model.config.model_type
    if model_type in _PENDING:
        return _PENDING[model_type]
    if model_type in RECOGNISED:
        return RECOGNISED[model_type]
    matched, mismatches = [], []
    for template, names in layouts():
        reason = mismatch(model, template)
        if reason is None:
            matched.append((template, names))
        else:
            mismatches.append(f"{'/'.join(names)}: {reason}")
    table = "cascadeprune.arch.table.FAMILIES"
    if not matched:
        raise UnsupportedArchitectureError(
            f"model family {model_type!r} is not supported: it has no entry in {table} and its layout "
            f"matches none of the known layouts ({'; '.join(mismatches)}). "
            "Add a FamilySpec for it with cascadeprune.arch.table.register()."
        )
    if len(matched) > 1:
        names = " and ".join("/".join(n) for _, n in matched)
        raise UnsupportedArchitectureError(
            f"model family {model_type!r} is not supported: it has no entry in {table} and its layout is "
            f"ambiguous (it matches the layouts of {names}). Add a FamilySpec for it with "
            "cascadeprune.arch.table.register()."
        )
    template, names = matched[0]
    spec = replace(template, name=model_type, origin=f"recognised (layout of {', '.join(names)})")
    _verify(model, spec)
    RECOGNISED[model_type] = spec
    log.warning("%s: not in %s; recognised the layout of %s and verified it (pruned == masked on a tiny %s)",
                model_type, table, "/".join(names), type(model).__name__)
    return spec


def _verify(model: nn.Module, spec: FamilySpec) -> None:
    if _verifier is None:
        raise UnsupportedArchitectureError(
            f"model family {spec.name!r}: a candidate layout was found but no verifier is registered "
            "(cascadeprune.wiring.wire() registers it)"
        )
    verify = load_ref(_verifier)
    _PENDING[spec.name] = spec
    try:
        verify(model, spec)
    except Exception as e:  # any failure of the check means the candidate is not trusted
        raise UnsupportedArchitectureError(
            f"model family {spec.name!r} is not supported: its modules match a known layout ({spec.origin}), "
            f"but pruning did not equal masking on a tiny {type(model).__name__} ({type(e).__name__}: {e}). "
            "Add a FamilySpec for it with cascadeprune.arch.table.register()."
        ) from e
    finally:
        _PENDING.pop(spec.name, None)


def mismatch(model: nn.Module, t: FamilySpec) -> str | None:
    """Why template ``t`` does not describe ``model`` (None when it does)."""
    from torch import nn

    from cascadeprune.arch.resolve import base_model_of, config_dims

    config = model.config
    for key in (t.key_layers, t.key_heads) + ((t.key_kv_heads,) if t.key_kv_heads else ()):
        if not isinstance(getattr(config, key, None), int):
            return f"config has no integer {key!r}"
    if t.key_intermediate and not hasattr(config, t.key_intermediate):
        return f"config has no {t.key_intermediate!r}"
    base = base_model_of(model)
    try:
        layer_list = base.get_submodule(t.layers)
    except AttributeError:
        return f"no layer list at {t.layers!r}"
    if not isinstance(layer_list, nn.ModuleList) or len(layer_list) != getattr(config, t.key_layers):
        return f"{t.layers!r} is not a list of {t.key_layers} = {getattr(config, t.key_layers)} layers"
    dims = config_dims(config, t)
    for module in layer_list:
        reason = _layer_mismatch(module, t, dims)
        if reason:
            return reason
    return None


def _layer_mismatch(layer: nn.Module, t: FamilySpec, dims) -> str | None:
    from cascadeprune.arch.resolve import LayerRefs, _check_layer, optional_submodule

    required = {"attention": t.attention, "o": t.o, "down": t.down, "up": t.up, "gate": t.gate, "q": t.q,
                "k": t.k, "v": t.v, "qkv": t.qkv, "gate_up": t.gate_up}
    refs = {}
    for field, path in required.items():
        if not path:
            refs[field] = None
            continue
        try:
            refs[field] = layer.get_submodule(path)
        except AttributeError:
            return f"no {field} module at {path!r} in a layer"
        weight = getattr(refs[field], "weight", None)
        if field != "attention" and (weight is None or weight.dim() != 2):
            return f"{path!r} is not a projection with a 2-D weight"
    for field in ("q_norm", "k_norm"):
        refs[field] = optional_submodule(layer, getattr(t, field))
    refs = LayerRefs(module=layer, orig_index=0, heads=tuple(range(dims.num_heads)),
                     kv_heads=tuple(range(dims.num_kv_heads)), channels=tuple(range(dims.intermediate_size)), **refs)
    try:  # shapes first: the most telling mismatch (e.g. a q norm over all heads instead of one)
        _check_layer(refs, t, dims)
    except CascadePruneError as e:
        return str(e).split(": ", 1)[1]
    # Norms must all be there, q/k norms included (optional in a declared family, but a template
    # that allowed them absent would match every plain layout too and make recognition ambiguous).
    for path in (*t.norms, t.q_norm, t.k_norm):
        if path and optional_submodule(layer, path) is None:
            return f"no norm at {path!r} in a layer"
    described = [p for p in (*t.attention_paths, *t.ffn_paths, *t.norms, t.q_norm, t.k_norm) if p]
    for name, _ in layer.named_parameters():
        if not any(name.startswith(p + ".") for p in described):
            return f"layer parameter {name!r} is not described by this layout"
    return None
