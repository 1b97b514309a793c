"""P5Rec: the generative LLM baseline, the paper's "Open-P5_LLaMa" row (OpenP5 on a LLaMA backbone).

Paper: SLMRec (Xu et al., ICLR 2025) compares against OpenP5 (Xu, Hua, Ji, Li, Ge, Zhang, "OpenP5: an
open-source platform for LLM-based recommendation", SIGIR 2024), a P5-style recommender (Geng et al.,
RecSys 2022) that reads the user's history as item identifiers in a text prompt and *writes* the next
item's identifier; its inference is the slowest row of the paper's efficiency table.

What this file builds, on the same backbone as the E4SRec models (`backbones.load_backbone`):
- Item identifiers: OpenP5's *sequential indexing*. Items are renumbered by first appearance in the
  training sequences (users in data order, each user's items oldest first), starting at 1001 as in
  OpenP5, and written as decimal digit strings: the first item seen is "1001", the next "1002", ...
- Prompt (OpenP5's first "sequential" template, then OpenP5-LLaMA's " Response: " join):
  "Considering user has interacted with items 1001, 1002, 1005 . What is the next recommendation for
  the user ? Response: " followed by the answer: the target's digits, then the tokenizer's EOS token.
- Tokenisation: every digit is its own token. Prompts and answers are assembled from pieces tokenised
  once (template head, each digit, the separator, template tail), so the history and the answer use the
  very same digit tokens. SmolLM2's and Llama-2's tokenizers split numbers into digits anyway (for
  SmolLM2 the pieces equal the tokenisation of the whole text, tests/test_p5.py checks this); a
  tokenizer that would merge digits ("100" as one token) is given single digits on purpose, and a
  tokenizer that cannot write a digit as one token is an error.
- Training: LoRA on the backbone (r 16, alpha 16, dropout 0.05; target modules a setting), the
  language-modelling loss (cross-entropy over the full vocabulary) on the answer tokens only (digits
  and EOS), mean over answer tokens. The LM head is the input embedding matrix where the backbone ties
  them (SmolLM2, the tiny test model); for an untied HF folder (Llama-2) `lm_head.weight` is read from
  its safetensors. Only LoRA trains.
- Scoring, both exact log-likelihoods of an identifier given the prompt (normalised over the full
  vocabulary, as `generate` with a prefix constraint scores them):
  `score_candidates` (1 + 999 protocol): one forward of the prompt, then its KV cache is reused for
  every candidate; candidates' identifiers share prefixes, so the distinct prefixes of all candidates
  form a tree that is fed one level (digit position) at a time, each node once, in chunks of
  `chunk_rows` rows. `score_all` (full ranking): constrained beam search over the prefix tree of all
  valid identifiers, `beam_width` beams; an identifier is finished when EOS is chosen. The
  `beam_width` best finished items get their log-likelihood; EVERY OTHER ITEM GETS -inf (the
  evaluator counts ties against the positive, so a positive outside the beam ranks last).

NOTE: OpenP5 puts the user id ("user_123") and the dataset name into the prompt and the answer
("Beauty 1234"), and samples one of ten prompt templates per training example; the book's models
see item sequences only, so here there is one fixed template without user id or dataset name.
NOTE: items never seen in the training sequences get the identifiers after all seen items, in item-id
order (OpenP5 numbers them by first appearance in the validation and test items, which the model
never sees at construction here).
NOTE: in the beam search an EOS expansion finishes an identifier at once and does not take one of the
`beam_width` live slots (in transformers' beam search finished and live hypotheses compete); identifiers
here are at most 5-6 digits, so the search ends after that many steps.
NOTE: LoRA targets default to gate/up/down projections, the SLMRec/E4SRec setting, so that the rows
of the main table differ in the method, not in the adapter budget; OpenP5's LLaMA scripts set the
targets on the command line (`lora_targets` here).
NOTE: the paper's backbone is LLaMA-7B; the book's CPU and GPU runs use SmolLM2-135M (see backbones.py).
"""

from __future__ import annotations

import inspect
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..util import EXECUTION
from .base import SeqRecommender

N_SYMBOLS = 11  # identifier alphabet: digits 0..9 and the end symbol
EOS = 10  # symbol index of the end of an identifier (the tokenizer's EOS token)


def _cache_kw() -> str:
    """The KV-cache argument of a transformers decoder: `cache` (transformers >= 5.2x), else `past_key_values`."""
    from transformers import LlamaModel

    return "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"


def _cache_of(out):
    """The KV cache a transformers forward returned, under either name."""
    return out["cache"] if "cache" in out else out["past_key_values"]


# --------------------------------------------------------------------------------------- indexing
def sequential_indexing(train_sequences: list[np.ndarray], n_items: int, offset: int = 1001) -> np.ndarray:
    """OpenP5 sequential indexing: `codes[item]` = `offset` + rank of the item's first appearance.

    Users are read in order, each user's items oldest first; items absent from `train_sequences` follow
    in item-id order. Returns int64 [n_items + 1] with `codes[0] = -1` (padding has no identifier).
    """
    if offset < 0:
        raise ValueError(f"identifier offset must be >= 0, got {offset}")
    rank = np.full(n_items + 1, -1, dtype=np.int64)
    nxt = 0
    for seq in train_sequences:
        for item in np.asarray(seq, dtype=np.int64).tolist():
            if not 1 <= item <= n_items:
                raise ValueError(f"item id {item} outside 1..{n_items} in the training sequences")
            if rank[item] < 0:
                rank[item] = nxt
                nxt += 1
    unseen = np.flatnonzero(rank[1:] < 0) + 1
    rank[unseen] = np.arange(nxt, nxt + len(unseen))
    codes = rank + offset
    codes[0] = -1
    return codes


class ItemCodec:
    """Items <-> identifier strings <-> symbol sequences <-> token ids, and the prefix tree of identifiers."""

    def __init__(self, codes: np.ndarray, tokenizer):
        self.codes = np.asarray(codes, dtype=np.int64)  # [n_items + 1], item -> integer identifier
        self.n_items = len(self.codes) - 1
        self.strings = [""] + [str(int(c)) for c in self.codes[1:]]  # item -> identifier string
        self.n_digits = np.array([1] + [len(x) for x in self.strings[1:]], dtype=np.int64)  # item -> digits
        self.item_of = {s: i for i, s in enumerate(self.strings) if i > 0}  # identifier string -> item
        if len(self.item_of) != self.n_items:
            raise ValueError("item identifiers are not unique")
        # symbol -> token id: the ten digits (each must be one token) and EOS
        digit_ids = []
        for d in "0123456789":
            ids = tokenizer.encode(d, add_special_tokens=False)
            if len(ids) != 1:
                raise ValueError(
                    f"the tokenizer writes the digit {d!r} as {len(ids)} tokens {ids}; P5 identifiers need one "
                    "token a digit. Use a tokenizer with single-digit tokens (SmolLM2, Llama-2 have them)."
                )
            digit_ids.append(ids[0])
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token; P5 needs one to end an identifier")
        self.symbol_token = torch.tensor(digit_ids + [tokenizer.eos_token_id])  # [11]
        # prefix tree: identifier prefix -> allowed next symbols (EOS where the prefix is a whole identifier)
        children: dict[str, set[int]] = {}
        for s in self.strings[1:]:
            for k in range(len(s)):
                children.setdefault(s[:k], set()).add(int(s[k]))
            children.setdefault(s, set()).add(EOS)
        self.children = {p: sorted(c) for p, c in children.items()}

    def symbols(self, item: int) -> list[int]:
        """Symbols of an item's identifier, EOS last: 1002 -> [1, 0, 0, 2, EOS]."""
        if not 1 <= item <= self.n_items:
            raise ValueError(f"item id {item} outside 1..{self.n_items}")
        return [int(ch) for ch in self.strings[item]] + [EOS]

    def tokens(self, item: int) -> list[int]:
        """Token ids of an item's identifier as the model writes it (digits, then EOS)."""
        return self.symbol_token[self.symbols(item)].tolist()

    def decode_symbols(self, symbols: list[int]) -> int | None:
        """Item of a symbol sequence (with or without the final EOS), or None if it is no identifier."""
        if symbols and symbols[-1] == EOS:
            symbols = symbols[:-1]
        if any(not 0 <= s <= 9 for s in symbols):
            return None
        return self.item_of.get("".join(str(s) for s in symbols))

    def decode_tokens(self, token_ids: list[int]) -> int | None:
        lookup = {t: s for s, t in enumerate(self.symbol_token.tolist())}
        if any(t not in lookup for t in token_ids):
            return None
        return self.decode_symbols([lookup[t] for t in token_ids])


# ----------------------------------------------------------------------------------------- config
@dataclass
class P5Config:
    backbone: str = "smollm2"  # backbones.load_backbone spec: "tiny", "smollm2" or an HF folder path
    n_layers: int | None = None  # keep only the first k decoder layers (None: the whole backbone)
    lora_r: int = 16  # LoRA rank (the paper's setting for every LLM row)
    lora_alpha: int = 16  # LoRA scaling numerator
    lora_dropout: float = 0.05  # dropout on the LoRA input
    lora_targets: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")  # modules that get LoRA
    max_len: int = 20  # most recent history items written into the prompt
    id_offset: int = 1001  # first identifier of the sequential indexing (OpenP5 starts at 1001)
    template: str = (  # prompt text; {history} becomes the identifiers joined by `separator`
        "Considering user has interacted with items {history} . "
        "What is the next recommendation for the user ? Response: "
    )
    separator: str = ", "  # between history identifiers
    beam_width: int = 20  # beams of the constrained search in score_all (= items with a finite score)
    # decoding rows a forward while scoring (bounds KV-copy memory; raise it on a GPU); execution-only
    chunk_rows: int = field(default=256, metadata=EXECUTION)
    score_users: int = 2  # users whose candidates are scored together: each holds its whole prefix tree,
    #                       about 1.4 GB at SmolLM2 scale (8 layers, 1000 candidates; 10 users at once: 12 GB)

    def __post_init__(self):
        self.lora_targets = tuple(self.lora_targets)
        if self.template.count("{history}") != 1:
            raise ValueError("P5Config.template must contain '{history}' exactly once")
        if self.beam_width < 1 or self.chunk_rows < 1 or self.max_len < 1 or self.score_users < 1:
            raise ValueError("beam_width, chunk_rows, score_users and max_len must be >= 1")


@dataclass
class _Prompt:
    """The encoded prompts of a batch: KV cache per layer, padding mask, lengths, first-symbol log-probs."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (K, V), each [B, kv_heads, T, head_dim]
    mask: torch.Tensor  # [B, T] 1 on real prompt tokens (left padded)
    length: torch.Tensor  # [B] real prompt tokens
    logp: torch.Tensor  # [B, 11] log p(first symbol | prompt)


@dataclass
class _Level:
    """One depth of a decoding tree: the K/V of the token each row fed, and each row's parent row."""

    kv: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # per layer [R, kvh, 1, hd]
    parent: torch.Tensor | None = None  # [R] row index in the level above (None at depth 0)


# ------------------------------------------------------------------------------------------ model
class P5Rec(SeqRecommender):
    """P5-style generative recommender on a LLaMA-family backbone with LoRA (see the module docstring).

    `train_sequences`: the training part of every user's sequence (`Split.train`), for the indexing.
    `backbone`: an already loaded `(base_model, tokenizer)`, else `cfg.backbone` is loaded.
    """

    def __init__(self, cfg: P5Config, n_items: int, train_sequences: list[np.ndarray], backbone=None):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        from slmrec_lib import backbones

        self.cfg = cfg
        self.n_items = n_items
        self.max_len = cfg.max_len
        base, tokenizer = backbone if backbone is not None else backbones.load_backbone(cfg.backbone)
        if cfg.n_layers is not None:
            backbones.keep_first_layers(base, cfg.n_layers)
        self.tokenizer = tokenizer
        self.codec = ItemCodec(sequential_indexing(train_sequences, n_items, cfg.id_offset), tokenizer)
        tied = bool(getattr(base.config, "tie_word_embeddings", False))
        head = None if tied else _read_lm_head(cfg.backbone, base)
        for p in base.parameters():
            p.requires_grad_(False)
        lora = LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.lora_targets), bias="none",
        )
        with warnings.catch_warnings():  # transformers' notice for every LoRA model peft builds
            warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
            self.lm = get_peft_model(base, lora)  # the base model with LoRA; its forward is the base model's
        if head is not None:
            self.register_buffer("lm_head_weight", head.to(base.embed_tokens.weight.dtype), persistent=False)
        else:
            self.lm_head_weight = None
        self.register_buffer("symbol_token", self.codec.symbol_token.clone(), persistent=False)  # [11]
        # prompt pieces, tokenised once
        enc = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
        head_text, tail_text = cfg.template.split("{history}")
        self._before, self._after, self._sep = enc(head_text), enc(tail_text), enc(cfg.separator)
        self._digit = self.codec.symbol_token[:10].tolist()
        pad = tokenizer.pad_token_id
        self._pad = int(pad if pad is not None else tokenizer.eos_token_id)  # any id: padding is masked
        self._cache_kw = _cache_kw()

    # ------------------------------------------------------------------------------ text assembly
    def _prompt_ids(self, row: torch.Tensor) -> list[int]:
        """Token ids of the prompt for one input row (its last `max_len` non-padding items)."""
        items = [int(i) for i in row.tolist() if i > 0][-self.max_len :]
        ids = list(self._before)
        for k, item in enumerate(items):
            if k:
                ids += self._sep
            ids += [self._digit[int(ch)] for ch in self.codec.strings[item]]
        return ids + self._after

    def prompt_text(self, row: torch.Tensor) -> str:
        """The prompt for one input row as text (for reading; the model uses `_prompt_ids`)."""
        items = [int(i) for i in row.tolist() if i > 0][-self.max_len :]
        return self.cfg.template.format(history=self.cfg.separator.join(self.codec.strings[i] for i in items))

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask, position_ids), each [B, T], left padded; positions start at 0."""
        device = self.symbol_token.device
        T = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), T), self._pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), T), dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, T - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[b, T - len(s) :] = 1
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        return ids.to(device), mask.to(device), pos.to(device)

    def _head_weight(self) -> torch.Tensor:
        """[V, H] output embedding: the input embeddings where tied, else the loaded `lm_head.weight`."""
        if self.lm_head_weight is not None:
            return self.lm_head_weight
        return self.lm.get_input_embeddings().weight

    def _symbol_logp(self, h: torch.Tensor) -> torch.Tensor:
        """(R, H) final hidden states -> (R, 11) log-probs of the digits and EOS, normalised over the vocab."""
        logp = F.log_softmax((h @ self._head_weight().T).float(), dim=-1)  # (R, V)
        return logp[:, self.symbol_token]  # (R, 11)

    # ----------------------------------------------------------------------------------- training
    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """LM loss on the answer tokens (target[:, -1]'s identifier and EOS) given the prompt of `input`."""
        inp, tgt = batch["input"], batch["target"][:, -1]  # (B, L), (B,)
        keep = (tgt > 0).nonzero().flatten().tolist()
        if not keep:
            raise ValueError("P5Rec.forward: no row of the batch has a target in its last column")
        seqs, labels = [], []
        for b in keep:
            prompt, answer = self._prompt_ids(inp[b]), self.codec.tokens(int(tgt[b]))
            seqs.append(prompt + answer)
            labels.append([-100] * len(prompt) + answer)
        ids, mask, pos = self._left_pad(seqs)  # (B', T)
        lab = torch.full_like(ids, -100)
        for b, lb in enumerate(labels):
            lab[b, ids.shape[1] - len(lb) :] = torch.tensor(lb)
        hidden = self.lm(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state  # (B', T, H)
        lab = lab[:, 1:]  # token t is predicted at position t - 1
        answer_at = lab != -100  # (B', T-1)
        h = hidden[:, :-1][answer_at]  # (N, H) one row per answer token
        logits = h @ self._head_weight().T  # (N, V)
        loss = F.cross_entropy(logits.float(), lab[answer_at])
        return loss, {"lm": float(loss.detach())}

    # ------------------------------------------------------------------------------------ decoding
    def _encode_prompts(self, inp: torch.Tensor) -> _Prompt:
        """Run the prompts once; keep their KV cache and the log-probs of the first identifier symbol."""
        ids, mask, pos = self._left_pad([self._prompt_ids(row) for row in inp])
        out = self.lm(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        kv = [(layer.keys, layer.values) for layer in _cache_of(out).layers]  # [B, kvh, T, hd] each
        return _Prompt(kv, mask, mask.sum(1), self._symbol_logp(out.last_hidden_state[:, -1]))

    def _extend(self, prompt: _Prompt, levels: list[_Level], user: torch.Tensor, parent: torch.Tensor,
                symbol: torch.Tensor) -> tuple[torch.Tensor, _Level]:
        """Feed one identifier symbol per row below `levels` (the rows' ancestors) on the prompt's cache.

        Row r belongs to prompt `user[r]`, hangs below row `parent[r]` of `levels[-1]` (ignored at depth
        0) and feeds `symbol[r]` (a digit). Returns (R, 11) log-probs of the next symbol and the new level.
        """
        from transformers import DynamicCache

        depth = len(levels)
        logps, kvs = [], []
        for start in range(0, len(user), self.cfg.chunk_rows):
            sl = slice(start, start + self.cfg.chunk_rows)
            u, tok = user[sl], self.symbol_token[symbol[sl]]  # (c,), (c,)
            chain, a = [None] * depth, parent[sl]  # ancestor row at each depth above this one
            for j in reversed(range(depth)):
                chain[j] = a
                a = levels[j].parent[a] if j > 0 else None
            data = []
            for layer, (pk, pv) in enumerate(prompt.kv):
                k = torch.cat([pk[u]] + [levels[j].kv[layer][0][chain[j]] for j in range(depth)], dim=2)
                v = torch.cat([pv[u]] + [levels[j].kv[layer][1][chain[j]] for j in range(depth)], dim=2)
                data.append((k, v))  # (c, kvh, T + depth, hd)
            cache = DynamicCache(ddp_cache_data=data)
            ones = torch.ones((len(u), depth + 1), dtype=prompt.mask.dtype, device=u.device)
            mask = torch.cat([prompt.mask[u], ones], dim=1)  # (c, T + depth + 1)
            pos = (prompt.length[u] + depth)[:, None]  # (c, 1) answer symbol `depth` sits after the prompt
            out = self.lm(input_ids=tok[:, None], attention_mask=mask, position_ids=pos, use_cache=True,
                          **{self._cache_kw: cache})
            logps.append(self._symbol_logp(out.last_hidden_state[:, -1]))
            kvs.append([(lay.keys[:, :, -1:], lay.values[:, :, -1:]) for lay in _cache_of(out).layers])
        kv = [(torch.cat([c[layer][0] for c in kvs]), torch.cat([c[layer][1] for c in kvs]))
              for layer in range(len(prompt.kv))]
        return torch.cat(logps), _Level(kv, parent if depth > 0 else None)

    @torch.no_grad()
    def score_candidates(self, input: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(B, L) histories, (B, C) item ids -> (B, C) log p(identifier of each candidate | prompt)."""
        B, C = candidates.shape
        step = self.cfg.score_users
        if B > step:  # users are independent: score them a few at a time to bound memory
            return torch.cat([self.score_candidates(input[i : i + step], candidates[i : i + step])
                              for i in range(0, B, step)])
        device = candidates.device
        cand = candidates.cpu().numpy()
        bad = (cand < 1) | (cand > self.n_items)
        if bad.any():
            b, c = np.argwhere(bad)[0]
            raise ValueError(f"candidate {cand[b, c]} (row {b}) is not an item id in 1..{self.n_items}")
        prompt = self._encode_prompts(input)
        code, ndig = self.codec.codes[cand], self.codec.n_digits[cand]  # (B, C) identifier as int, its digits
        user = np.repeat(np.arange(B)[:, None], C, axis=1)  # (B, C)
        total = prompt.logp.cpu()[torch.from_numpy(user), torch.from_numpy(code // 10 ** (ndig - 1))]  # (B, C)
        # The distinct prefixes of all candidates form a tree; depth j holds the prefixes of j + 1 digits,
        # keyed by user * 10^(j+1) + prefix (identifiers have no leading zero, so keys are unique per depth).
        levels: list[_Level] = []
        keys_above = None
        for j in range(int(ndig.max())):
            has = ndig > j  # (B, C) candidates with a (j+1)-digit prefix
            prefix = code[has] // 10 ** (ndig[has] - j - 1)
            keys, row = np.unique(user[has] * 10 ** (j + 1) + prefix, return_inverse=True)
            rows_user, rows_symbol = keys // 10 ** (j + 1), keys % 10
            parent = np.zeros(len(keys), dtype=np.int64)
            if j:
                parent = np.searchsorted(keys_above, rows_user * 10**j + (keys % 10 ** (j + 1)) // 10)
            as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
            logp, level = self._extend(prompt, levels, as_t(rows_user), as_t(parent), as_t(rows_symbol))
            levels.append(level)
            keys_above = keys
            last = ndig[has] == j + 1  # the prefix is the whole identifier: next symbol is EOS
            nxt = np.where(last, EOS, (code[has] // 10 ** np.maximum(ndig[has] - j - 2, 0)) % 10)
            total[torch.from_numpy(has)] += logp.cpu()[torch.from_numpy(row.reshape(-1)), torch.from_numpy(nxt)]
        return total.to(device)

    @torch.no_grad()
    def score_all(self, input: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, n_items + 1): log-likelihood of the `beam_width` items a constrained beam search
        finds; every other item (and column 0) gets -inf."""
        B, W = input.shape[0], self.cfg.beam_width
        device = input.device
        prompt = self._encode_prompts(input)
        finished: list[list[tuple[float, int]]] = [[] for _ in range(B)]
        live = [(b, "", 0.0, b) for b in range(B)]  # (user, prefix, score, row of its log-probs)
        src = prompt.logp.cpu().tolist()  # log-probs of the next symbol, by row
        levels: list[_Level] = []
        while live:
            expansions: list[list[tuple[float, str, int]]] = [[] for _ in range(B)]
            for b, prefix, score, row in live:
                for sym in self.codec.children[prefix]:
                    total = score + src[row][sym]
                    if sym == EOS:
                        finished[b].append((total, self.codec.item_of[prefix]))
                    else:
                        expansions[b].append((total, prefix + str(sym), row))
            nxt = []
            for b in range(B):
                nxt += [(b, p, s, r) for s, p, r in sorted(expansions[b], key=lambda e: -e[0])[:W]]
            if not nxt:
                break
            user = torch.tensor([b for b, _, _, _ in nxt], dtype=torch.long, device=device)
            symbol = torch.tensor([int(p[-1]) for _, p, _, _ in nxt], dtype=torch.long, device=device)
            parent = torch.tensor([r for _, _, _, r in nxt], dtype=torch.long, device=device)
            logp, level = self._extend(prompt, levels, user, parent, symbol)
            levels.append(level)
            src = logp.cpu().tolist()
            live = [(b, p, s, i) for i, (b, p, s, _) in enumerate(nxt)]
        out = torch.full((B, self.n_items + 1), float("-inf"))
        for b in range(B):
            for score, item in sorted(finished[b], key=lambda e: -e[0])[:W]:
                out[b, item] = score
        return out.to(device)

    @torch.no_grad()
    def generate(self, input: torch.Tensor, k: int = 10) -> torch.Tensor:
        """(B, L) -> (B, k) the top-k item ids of the constrained beam search (0 where fewer were found)."""
        scores = self.score_all(input)
        top = scores.topk(min(k, scores.shape[1]), dim=1)
        return torch.where(torch.isfinite(top.values), top.indices, torch.zeros_like(top.indices))


def _read_lm_head(spec: str, base: nn.Module) -> torch.Tensor:
    """`lm_head.weight` [V, H] of an untied HF causal LM folder, read from its safetensors files."""
    from safetensors import safe_open

    folder = Path(spec).expanduser()
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = [folder / json.loads(index.read_text())["weight_map"].get("lm_head.weight", "")]
    else:
        files = sorted(folder.glob("*.safetensors"))
    for file in files:
        if file.is_file():
            with safe_open(str(file), framework="pt") as f:
                if "lm_head.weight" in f.keys():
                    weight = f.get_tensor("lm_head.weight")
                    assert weight.shape == base.embed_tokens.weight.shape, (weight.shape, base.embed_tokens.weight.shape)
                    return weight
    raise FileNotFoundError(
        f"backbone {spec!r} does not tie its LM head to the input embeddings and no 'lm_head.weight' was "
        "found in its safetensors files; P5 needs the LM head. Give an HF causal-LM folder with its head."
    )
