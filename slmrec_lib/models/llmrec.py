"""E4SRec-style LLM sequential recommender: the teacher E4SRec* and the truncated E4SRec_k of SLMRec.

Paper: Xu et al., "SLMRec: Distilling Large Language Models into Small for Sequential Recommendation",
ICLR 2025 (the teacher follows Li et al., "E4SRec", 2023). A LLaMA decoder reads

    [instruction tokens | input_proj(item_embeddings[i]) for the user's last L items | response tokens]

as `inputs_embeds`; the last token's state after the final RMSNorm goes through
`score = Linear(hidden, d0, bias=False)` and is dotted with every row of the frozen item embeddings
(d0 = 128, a pretrained SASRec's item table); the loss is cross-entropy over all items on the
next item. Only LoRA (peft, on the MLP projections) and the two projections train (and the item
embeddings too with `train_item_table`, a control the paper does not run). E4SRec_k keeps the first k
decoder layers (`backbones.keep_first_layers`).

Scoring (`score_all`) has exact speed paths, all off by default and none changing the ranking
(tested): `merge_lora` folds LoRA into the frozen weights for the forward (training's weights are
restored bit for bit afterwards), `compile_scoring` runs the forward under `torch.compile`, and
`score_batch_size` cuts a call into forwards of that many rows (the last one padded to it when
compiled, so the compiled graph sees one shape). `score_fp32` (a real setting: it changes ties)
computes the user vector and its dot products with the item table in float32 under bf16 autocast.

Layer redundancy: `layer_angular_distances` gives the angular distance between the last-token states
of layer l and layer l + n (Gromov et al. 2024, "The Unreasonable Ineffectiveness of the Deeper Layers").

Shared prefix: the instruction is identical for every user and, under causal attention, never sees
the items, so its key/value cache is the same for every row. `share_prefix` computes it on a batch of
one and reuses it: in evaluation (no grad) once per set of weights, in training once per forward with
gradients flowing into it. Exact in eval (tested against the plain forward).

NOTE: padded item slots (id 0) are masked out of attention but keep their position ids, as in the
authors' code; a left-padded short history thus sits at the same positions as a full one.
NOTE: unlike the authors' code, id 0 is padding only: it is never a class of the cross-entropy and
`score_all` gives it -inf.
NOTE: with `share_prefix` in training, LoRA dropout on the instruction tokens draws one mask per batch
instead of one per row (identical when `lora_dropout` is 0, tested); set `share_prefix=False` for the
authors' per-row behaviour. The paper's backbone is Llama-2-7B; the book's runs use SmolLM2-135M
(`backbones.py`).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from slmrec_lib.backbones import keep_first_layers, load_backbone
from slmrec_lib.models.base import SeqRecommender
from slmrec_lib.util import EXECUTION

# The authors' Alpaca-style prompts (authors_code.md), tokenised without BOS.
INSTRUCTION = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\nGiven the user’s purchase history, predict next possible item to be purchased.\n\n"
    "### Input:\n"
)
RESPONSE = "\n### Response:\n"


def block_output(hidden_states: Sequence[torch.Tensor], k: int) -> torch.Tensor:
    """The last-token state after decoder block `k`, from a transformers `hidden_states` tuple.

    `hidden_states` has n + 1 entries of shape [B, T, H] for an n-layer decoder (`output_hidden_states`):
    index 0 is the input embeddings, index k (1 <= k < n) the residual stream leaving block k, and
    index n the output of the last block AFTER the final RMSNorm (transformers replaces it by
    `last_hidden_state`). This returns `hidden_states[k][:, -1]` unchanged, [B, H]:

    - k = 0: the last input embedding;
    - 1 <= k < n: the pre-norm residual stream after block k (NO final norm applied);
    - k = n: the normed final state, the one the score head reads.

    This is the authors' indexing (`hidden_states[(N // b) * i]`, index N normed).
    """
    n = len(hidden_states) - 1
    if not 0 <= k <= n:
        raise IndexError(f"block_output: k={k} outside 0..{n} (the decoder has {n} layers)")
    return hidden_states[k][:, -1]


@dataclass
class LLMRecConfig:
    n_layers: int | None = None  # decoder layers kept (the first k); None = all of the backbone's
    max_len: int = 30  # items of history in the prompt (the authors use 30)
    lora_r: int = 16  # LoRA rank
    lora_alpha: int = 16  # LoRA scaling numerator (scale = alpha / r)
    lora_dropout: float = 0.05  # dropout on the LoRA input
    lora_targets: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")  # modules given LoRA (attention untouched)
    instruction: str = INSTRUCTION  # text before the items
    response: str = RESPONSE  # text after the items; its last token's state is the user vector
    share_prefix: bool = True  # compute the instruction's key/value cache once and reuse it (see header)
    eval_bf16: bool = True  # bf16 autocast in score_all / last_token_states when the model is on CUDA
    train_item_table: bool = False  # the SASRec item embeddings train too (the paper keeps them frozen)
    score_fp32: bool = False  # scoring: user vector and item dot products in float32 under bf16 autocast (changes ties)
    # scoring: LoRA folded into the frozen weights / the forward under torch.compile. Real settings, not
    # execution-only: under bf16 on an H200 they moved the rank of most users by a few places
    # (results/gpu/scoring.csv, same_rank_fraction 0.03-0.04), so a run that uses them is another run.
    merge_lora: bool = False
    compile_scoring: bool = False
    score_batch_size: int | None = field(default=None, metadata=EXECUTION)  # scoring: rows a forward (None: as given)

    def __post_init__(self) -> None:
        self.lora_targets = tuple(self.lora_targets)
        if self.max_len < 1:
            raise ValueError(f"LLMRecConfig.max_len must be >= 1, got {self.max_len}")
        if self.n_layers is not None and self.n_layers < 1:
            raise ValueError(f"LLMRecConfig.n_layers must be None or >= 1, got {self.n_layers}")
        if self.score_batch_size is not None and self.score_batch_size < 1:
            raise ValueError(f"LLMRecConfig.score_batch_size must be None or >= 1, got {self.score_batch_size}")


class LLMRec(SeqRecommender):
    """E4SRec-style recommender on a LLaMA base model (see the module docstring).

    `backbone`: a transformers base model (`LlamaModel`, from `backbones.load_backbone`), modified in
    place (truncated, frozen, LoRA added); `tokenizer`: its tokenizer; `item_embeddings`: [n_items + 1, d0]
    float tensor of item vectors (row 0 = padding), a pretrained SASRec's item table, copied into the
    `item_embeddings` embedding (frozen unless `cfg.train_item_table`).
    """

    def __init__(self, backbone: nn.Module, tokenizer, item_embeddings: torch.Tensor, cfg: LLMRecConfig | None = None):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        cfg = cfg or LLMRecConfig()
        self.cfg = cfg
        if item_embeddings.dim() != 2 or item_embeddings.shape[0] < 2:
            raise ValueError(f"item_embeddings must be [n_items + 1, d0], got {tuple(item_embeddings.shape)}")
        self.n_items = item_embeddings.shape[0] - 1
        self.max_len = cfg.max_len
        if cfg.n_layers is not None:
            keep_first_layers(backbone, cfg.n_layers)
        self.n_layers = backbone.config.num_hidden_layers
        hidden, d0 = backbone.config.hidden_size, item_embeddings.shape[1]

        for p in backbone.parameters():
            p.requires_grad_(False)
        lora = LoraConfig(task_type="FEATURE_EXTRACTION", r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                          lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_targets), bias="none")
        with warnings.catch_warnings():  # transformers' notice for every LoRA model peft builds
            warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
            self.llm = get_peft_model(backbone, lora)  # LoRA layers are injected into `backbone` itself
        self.item_embeddings = nn.Embedding.from_pretrained(item_embeddings.detach().float().clone(),
                                                            freeze=not cfg.train_item_table)
        self.input_proj = nn.Linear(d0, hidden)  # item vector -> token embedding (with bias, as the authors)
        self.score = nn.Linear(hidden, d0, bias=False)  # user state -> item-table space

        def ids(text: str) -> torch.Tensor:
            return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)

        self.register_buffer("instr_ids", ids(cfg.instruction), persistent=False)  # (P,)
        self.register_buffer("resp_ids", ids(cfg.response), persistent=False)  # (R,)
        if len(self.instr_ids) == 0 or len(self.resp_ids) == 0:
            raise ValueError("instruction and response must each tokenise to at least one token")
        params = inspect.signature(type(self.decoder).forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # transformers >= 5.2x renamed it
        self._prefix_memo: tuple | None = None  # (key, [(k, v) per layer]) for eval
        self._merged_memo: tuple | None = None  # (key, [(frozen weight, merged weight)]) for merge_lora
        self._merged_now = False  # True inside _lora_merged: the prefix memo must not mix the two
        self._compiled = None  # torch.compile of _last_state, built on first use
        self.register_load_state_dict_pre_hook(_rename_old_item_key)
        self._check_trainable()

    # -------------------------------------------------------------------------------- structure
    @property
    def decoder(self) -> nn.Module:
        """The LoRA-carrying base model (the `LlamaModel` that was passed in)."""
        return self.llm.get_base_model()

    @property
    def tokens_per_example(self) -> int:
        """Positions the decoder reads for one user: instruction + max_len items + response."""
        return len(self.instr_ids) + self.max_len + len(self.resp_ids)

    def _check_trainable(self) -> None:
        allowed = ("input_proj.", "score.") + (("item_embeddings.",) if self.cfg.train_item_table else ())
        bad = [n for n, p in self.named_parameters() if p.requires_grad
               and not (".lora_" in n or n.startswith(allowed))]
        assert not bad, f"only LoRA and the two projections (and the item embeddings if asked) may train, not: {bad[:5]}"
        assert any(".lora_" in n for n, p in self.named_parameters() if p.requires_grad), "no LoRA parameter found"

    # ---------------------------------------------------------------------------------- decoding
    def _tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder.embed_tokens(ids)  # (T, H)

    def _prefix_kv(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of the instruction tokens, per layer, each [1, kv_heads, P, head_dim]."""
        emb = self._tokens(self.instr_ids)[None]  # (1, P, H)
        out = self.decoder(inputs_embeds=emb, use_cache=True)
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        assert len(kv) == self.n_layers
        return kv

    def _memo_key(self, device: torch.device) -> tuple:
        amp = torch.is_autocast_enabled(device.type)
        dtype = torch.get_autocast_dtype(device.type) if amp else None
        versions = tuple(p._version for p in self.parameters() if p.requires_grad)  # bumped by every in-place update
        return (device, amp, dtype, versions, self._merged_now)

    def _eval_prefix_kv(self, device: torch.device):
        key = self._memo_key(device)
        if self._prefix_memo is None or self._prefix_memo[0] != key:
            self._prefix_memo = (key, self._prefix_kv())
        return self._prefix_memo[1]

    def _decode(self, input: torch.Tensor, hidden_states: bool = False, prefix_kv=None):
        """Run the decoder on the prompt of each row of `input` [B, >= 1] (its last max_len items).

        Returns the transformers output; its sequence axis covers the items and the response (and the
        instruction too when `share_prefix` is off); the last position is the response's last token.
        `prefix_kv`: the instruction's cache when the caller computed it (the compiled scoring path).
        """
        items = input[:, -self.max_len :]  # (B, L)
        B, L = items.shape
        dtype = self.decoder.embed_tokens.weight.dtype
        item_vecs = self.input_proj(self.item_embeddings(items)).to(dtype)  # (B, L, H)
        body = torch.cat([item_vecs, self._tokens(self.resp_ids)[None].expand(B, -1, -1)], dim=1)  # (B, L+R, H)
        P, T = len(self.instr_ids), body.shape[1]
        mask = torch.cat([torch.ones(B, P, dtype=torch.long, device=items.device), (items > 0).long(),
                          torch.ones(B, T - L, dtype=torch.long, device=items.device)], dim=1)  # (B, P+T)
        if not self.cfg.share_prefix:
            embeds = torch.cat([self._tokens(self.instr_ids)[None].expand(B, -1, -1), body], dim=1)  # (B, P+T, H)
            return self.decoder(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=hidden_states,
                                use_cache=False)
        from transformers import DynamicCache

        kv = prefix_kv
        if kv is None:
            kv = self._prefix_kv() if torch.is_grad_enabled() else self._eval_prefix_kv(items.device)
        cache = DynamicCache(ddp_cache_data=[(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in kv])
        positions = torch.arange(P, P + T, device=items.device)[None]  # (1, T): continue after the prefix
        return self.decoder(inputs_embeds=body, attention_mask=mask, position_ids=positions,
                            output_hidden_states=hidden_states, use_cache=True, **{self._cache_kw: cache})

    def _eval_autocast(self, device: torch.device):
        on = device.type == "cuda" and self.cfg.eval_bf16 and not torch.is_autocast_enabled("cuda")
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=on)

    # ------------------------------------------------------------------------------ public pieces
    def user_state(self, input: torch.Tensor) -> torch.Tensor:
        """[B, H]: the last token's state after the final norm (what the score head reads)."""
        return self._decode(input).last_hidden_state[:, -1]

    def last_token_states(self, input: torch.Tensor) -> list[torch.Tensor]:
        """States of the last prompt token after each block, for distillation.

        Returns a list of n_layers + 1 tensors [B, H]; entry k = `block_output(hidden_states, k)`:
        entry 0 is the last input embedding, entries 1..n-1 the pre-norm residual stream after block k,
        entry n (the last) the final-normed state that `score` reads (`item_logits(states[-1])` gives
        the model's scores). Gradients flow (call under `torch.no_grad()` for a frozen teacher); dtype is
        whatever the surrounding autocast gives (bf16 autocast is applied on CUDA when not under grad).
        """
        with self._eval_autocast(input.device) if not torch.is_grad_enabled() else contextlib.nullcontext():
            hs = self._decode(input, hidden_states=True).hidden_states
            assert len(hs) == self.n_layers + 1, f"expected {self.n_layers + 1} hidden states, got {len(hs)}"
            return [block_output(hs, k) for k in range(self.n_layers + 1)]

    def item_logits(self, state: torch.Tensor, fp32: bool = False) -> torch.Tensor:
        """[B, n_items]: scores of items 1..n_items (column j is item j + 1) from final states [B, H].

        `fp32`: the score head and the dot products in float32 whatever the surrounding autocast.
        """
        table = self.item_embeddings.weight[1:]  # (n_items, d0)
        if fp32:
            with torch.autocast(state.device.type, enabled=False):
                user = F.linear(state.float(), self.score.weight.float())  # (B, d0)
                return user @ table.float().T  # (B, n_items)
        user = self.score(state.to(self.score.weight.dtype))  # (B, d0)
        return user @ table.T.to(user.dtype)  # (B, n_items)

    # ------------------------------------------------------------------- SeqRecommender interface
    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy over all items of the item after the whole row (`target[:, -1]`)."""
        logits = self.item_logits(self.user_state(batch["input"]))  # (B, n_items)
        target = batch["target"][:, -1] - 1  # item j -> class j - 1; padding 0 -> -1 (ignored)
        loss = F.cross_entropy(logits.float(), target, ignore_index=-1)
        return loss, {"ce": loss.item()}

    @torch.no_grad()
    def score_all(self, input: torch.Tensor) -> torch.Tensor:
        size = self.cfg.score_batch_size or len(input)
        with self._eval_autocast(input.device), self._lora_merged():
            logits = torch.cat([self._score_rows(input[s : s + size], size) for s in range(0, len(input), size)])
        pad = torch.full((len(logits), 1), float("-inf"), device=logits.device)
        return torch.cat([pad, logits], dim=1)  # (B, n_items + 1), column 0 = padding

    # ------------------------------------------------------------------------ scoring speed paths
    def _score_rows(self, input: torch.Tensor, size: int) -> torch.Tensor:
        """[b, n_items] float scores of b <= size rows, through the compiled forward if asked."""
        if not self.cfg.compile_scoring:
            return self.item_logits(self.user_state(input), fp32=self.cfg.score_fp32).float()
        b = len(input)
        if b < size:  # one shape for the compiled graph: pad with copies of the last row, drop them after
            input = torch.cat([input, input[-1:].expand(size - b, -1)])
        if self._compiled is None:
            self._compiled = torch.compile(self._last_state, dynamic=False)
        kv = self._eval_prefix_kv(input.device) if self.cfg.share_prefix else None
        state = self._compiled(input[:, -self.max_len :], kv)  # (size, H)
        return self.item_logits(state[:b], fp32=self.cfg.score_fp32).float()

    def _last_state(self, items: torch.Tensor, kv) -> torch.Tensor:
        """The function `compile_scoring` compiles: items [B, L] (+ the prefix cache) -> user states [B, H]."""
        return self._decode(items, prefix_kv=kv).last_hidden_state[:, -1]

    def _merged_weights(self, device: torch.device) -> list[tuple[nn.Parameter, torch.Tensor]]:
        """(frozen base weight, base weight + LoRA delta) for every LoRA layer, memoised on the weights."""
        key = (device, tuple(p._version for p in self.parameters() if p.requires_grad))
        if self._merged_memo is None or self._merged_memo[0] != key:
            pairs = []
            for module in self.llm.modules():
                if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
                    base = module.base_layer.weight
                    delta = sum(module.get_delta_weight(name) for name in module.active_adapters)
                    pairs.append((base, (base.detach().float() + delta.float()).to(base.dtype)))
            assert pairs, "merge_lora: no LoRA layer found"
            self._merged_memo = (key, pairs)
        return self._merged_memo[1]

    @contextlib.contextmanager
    def _lora_merged(self):
        """With `merge_lora`: LoRA switched off and its delta folded into the frozen weights, for
        no-grad scoring; the original weight tensors are put back on exit (bit for bit)."""
        if not self.cfg.merge_lora or torch.is_grad_enabled():
            yield
            return
        pairs = self._merged_weights(self.item_embeddings.weight.device)
        originals = [base.data for base, _ in pairs]
        with self.llm.disable_adapter():
            try:
                for base, merged in pairs:
                    base.data = merged
                self._merged_now = True
                yield
            finally:
                self._merged_now = False
                for (base, _), original in zip(pairs, originals):
                    base.data = original

    # ---------------------------------------------------------------------------- construction
    @classmethod
    def from_spec(cls, spec: str, item_embeddings: torch.Tensor, cfg: LLMRecConfig | None = None,
                  dtype: torch.dtype = torch.float32, gguf_path=None) -> "LLMRec":
        """Load the backbone `spec` (see `backbones.load_backbone`) and build the model on it; only the
        first `cfg.n_layers` layers are loaded."""
        cfg = cfg or LLMRecConfig()
        backbone, tokenizer = load_backbone(spec, dtype=dtype, gguf_path=gguf_path, layers=cfg.n_layers)
        return cls(backbone, tokenizer, item_embeddings, cfg)

    def train(self, mode: bool = True):
        self._prefix_memo = None  # weights are about to change
        self._merged_memo = None
        return super().train(mode)


def _rename_old_item_key(module, state_dict, prefix, *args) -> None:
    """Load state dicts saved before the item table was called `item_embeddings` (key `item_emb.weight`)."""
    old, new = prefix + "item_emb.weight", prefix + "item_embeddings.weight"
    if old in state_dict and new not in state_dict:
        state_dict[new] = state_dict.pop(old)


# ------------------------------------------------------------------------------- layer redundancy
def angular_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """arccos(cosine similarity) / pi of matched rows, in [0, 1]: 0 parallel, 1/2 orthogonal, 1 opposite.

    a, b: [..., H]; returns [...] (float32). Gromov et al. 2024, eq. 7.
    """
    if a.shape != b.shape:
        raise ValueError(f"angular_distance: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
    cos = F.cosine_similarity(a.float(), b.float(), dim=-1).clamp(-1.0, 1.0)
    return torch.arccos(cos) / math.pi


@torch.no_grad()
def layer_angular_distances(model: LLMRec, inputs: torch.Tensor, max_shift: int | None = None,
                            batch_size: int = 64):
    """Mean angular distance between the last-token states of layer l and layer l + n, over users.

    `model`: a trained `LLMRec` (an `SLMRecStudent`'s `.student` for a student); `inputs`: LongTensor
    [U, L] of histories (e.g. `data.eval_inputs(split, "test", max_len)[0]`). States are
    `last_token_states` (index 0 = the embeddings, index k = after block k, `block_output`), so layer l
    runs over 0..N - n. Returns a DataFrame with columns layer, shift (n, 1..max_shift, default N),
    angular_distance (mean over the U users), users, normed (True where l + n = N: that state is
    after the final RMSNorm, the others are the raw residual stream).
    """
    import pandas as pd

    n_layers = model.n_layers
    max_shift = n_layers if max_shift is None else max_shift
    if not 1 <= max_shift <= n_layers:
        raise ValueError(f"max_shift={max_shift} must be in 1..{n_layers} (the model's depth)")
    if len(inputs) == 0:
        raise ValueError("layer_angular_distances needs at least one user's history")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = torch.zeros(n_layers + 1, max_shift + 1, dtype=torch.float64)  # [l, n]
    try:
        for start in range(0, len(inputs), batch_size):
            states = torch.stack(model.last_token_states(inputs[start : start + batch_size].to(device)))  # (N+1, B, H)
            for n in range(1, max_shift + 1):
                sums[: n_layers + 1 - n, n] += angular_distance(states[:-n], states[n:]).sum(dim=1).double().cpu()
    finally:
        model.train(was_training)
    rows = [dict(layer=l, shift=n, angular_distance=(sums[l, n] / len(inputs)).item(), users=len(inputs),
                 normed=l + n == n_layers)
            for n in range(1, max_shift + 1) for l in range(n_layers + 1 - n)]
    return pd.DataFrame(rows)
