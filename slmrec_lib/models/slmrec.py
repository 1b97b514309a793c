"""SLMRec: a shallow LLM recommender distilled from a deeper, trained one.

Paper: Xu et al., "SLMRec: Distilling Large Language Models into Small for Sequential Recommendation",
ICLR 2025 (arXiv 2405.17890), Section 3. The student is an E4SRec-style `LLMRec` on the first N layers
of the pretrained backbone with fresh LoRA and projections; the teacher is a trained M-layer `LLMRec`.
Both are cut into b blocks (`losses.block_pairs`); at each block end i = 1..b the student's last-token
state s_i is pulled towards the teacher's t_i:

    L = CE(student) + w_cos * sum_i D_cos(s_i, t_i) + w_norm * sum_i D_norm(s_i, t_i) + w_ms * L_ms

L_ms is the cross-entropy of b - 1 extra heads `Linear(hidden, d0, bias=False)` on the student's
intermediate block ends (dotted with the frozen item table like the main score head); they are not
used at inference. Offline (the paper's default): the teacher is frozen, in eval mode, without
gradients. Online: the teacher trains at the same time on its own cross-entropy.

Every configured term (weight > 0) is computed and logged in `parts`; one that cannot be computed is
an error. NOTE: the authors' public code wraps the distillation in a bare `except` that falls back to
the student's cross-entropy alone, so its shipped scripts train without D_cos, D_norm and L_ms.
NOTE: block ends follow `losses.block_pairs` (nearest layer at relative depth i / b, last pair the
final outputs), not the authors' (N // b) * i; the two agree where b divides both depths (8 -> 4).
The authors place the L_ms heads at ((N + 1) // b) * j; here they sit on the same student block ends
as the distillation pairs (equal for N = 4 and N = 8 with b = 4).
NOTE: as in the authors' code, intermediate states are the pre-norm residual stream
(`llmrec.block_output`); only the last pair is after the final RMSNorm.
NOTE: in online mode the teacher's states are detached in D_cos / D_norm, so the teacher learns from
its own cross-entropy only and the distillation terms move the student alone.
NOTE: D_norm defaults to the authors' unsquared L2 distance (`norm_squared=True` gives the paper's).

Teacher-state cache (offline only, `teacher_cache`, an execution setting): a frozen teacher in eval
mode gives a training row the same block-end states at every step, so `prepare_training(examples,
device)` runs it once, without gradients, over all training rows and keeps the states the pairs
need on the device, as the teacher computes them (bf16 under bf16 autocast); `forward` then reads
them by `batch["row"]` (the rows' indices into `examples`) instead of running the teacher. Each
read checks that the batch's inputs are the cached rows' inputs. Without `prepare_training` (or
with `teacher_cache=False`) the teacher runs live at every step; `teacher_states` (set by the runner
on the CPU, see `slmrec_lib.teacher_states`) then keeps each batch's states for the next student of
the same teacher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from slmrec_lib.losses import block_pairs, cross_entropy, d_cos, d_norm, multi_supervision
from slmrec_lib.models.base import SeqRecommender
from slmrec_lib.models.llmrec import LLMRec, LLMRecConfig
from slmrec_lib.util import EXECUTION

MODES = ("offline", "online")


@dataclass
class DistillConfig:
    blocks: int = 4  # b: blocks each model is cut into; distillation at each of the b block ends
    w_cos: float = 1.0  # l1, weight of sum_i D_cos (0 switches the term off)
    w_norm: float = 0.1  # l2, weight of sum_i D_norm (0 switches it off; the authors hard-code 0.1)
    w_ms: float = 1.0  # l3, weight of L_ms, the b - 1 extra heads' cross-entropy (0: no heads at all)
    norm_squared: bool = False  # D_norm squared as the paper writes it (True) or unsquared as the authors' code
    mode: str = "offline"  # "offline": frozen teacher (paper default); "online": teacher trains on its own CE too
    # offline: the frozen teacher's states computed once by prepare_training (None: on offline, off online)
    teacher_cache: bool | None = field(default=None, metadata=EXECUTION)
    teacher_cache_batch_size: int = field(default=256, metadata=EXECUTION)  # rows a teacher forward when caching
    # offline students of one teacher on the CPU share its states batch by batch (`slmrec_lib.teacher_states`;
    # the same numbers as the live teacher); False: every student runs its teacher
    share_teacher_states: bool | None = field(default=None, metadata=EXECUTION)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"DistillConfig.mode must be one of {MODES}, got {self.mode!r}")
        if self.teacher_cache and self.mode == "online":
            raise ValueError("DistillConfig: teacher_cache=True needs mode='offline'; an online teacher trains, so "
                             "its states change every step and cannot be cached. Set teacher_cache=False (or None)")
        if self.teacher_cache_batch_size < 1:
            raise ValueError(f"DistillConfig.teacher_cache_batch_size must be >= 1, got {self.teacher_cache_batch_size}")
        if self.blocks < 1:
            raise ValueError(f"DistillConfig.blocks must be >= 1, got {self.blocks}")
        for name in ("w_cos", "w_norm", "w_ms"):
            w = getattr(self, name)
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"DistillConfig.{name} must be a finite weight >= 0 (0 switches it off), got {w}")
        if self.w_ms > 0 and self.blocks < 2:
            raise ValueError("DistillConfig: multi-supervision needs blocks >= 2 (its heads sit on the b - 1 "
                             "intermediate block ends); set w_ms=0 or raise blocks")


def _with_padding_column(logits: torch.Tensor) -> torch.Tensor:
    """[B, n_items] (column j = item j + 1) -> [B, n_items + 1] with column 0 = -inf (padding)."""
    pad = torch.full((len(logits), 1), float("-inf"), dtype=logits.dtype, device=logits.device)
    return torch.cat([pad, logits], dim=1)


class SLMRecStudent(SeqRecommender):
    """The student LLMRec, its L_ms heads, and the teacher it learns from.

    `student`: a fresh `LLMRec` of N layers; `teacher`: a trained `LLMRec` of M layers on the same
    backbone family (same hidden size) and the same item table. Inference (`score_all`) is the
    student's alone.
    """

    def __init__(self, student: LLMRec, teacher: LLMRec, cfg: DistillConfig | None = None):
        super().__init__()
        cfg = cfg or DistillConfig()
        self.cfg = cfg
        hidden_s = student.decoder.config.hidden_size
        hidden_t = teacher.decoder.config.hidden_size
        if hidden_s != hidden_t:
            raise ValueError(f"student hidden size {hidden_s} differs from the teacher's {hidden_t}: D_cos and "
                             "D_norm compare states directly, so both must come from the same backbone family")
        if student.n_items != teacher.n_items or not torch.equal(student.item_embeddings.weight.cpu(),
                                                                   teacher.item_embeddings.weight.cpu()):
            raise ValueError("student and teacher must share the same frozen item table (same n_items and "
                             "values); build the student from the teacher's `item_embeddings.weight`")
        if student.max_len != teacher.max_len:
            raise ValueError(f"student max_len {student.max_len} differs from the teacher's {teacher.max_len}: "
                             "both must read the same prompt")
        self.student = student
        self.teacher = teacher
        self.n_items = student.n_items
        self.max_len = student.max_len
        # block_pairs raises if b exceeds either depth
        self.pairs = block_pairs(student.n_layers, teacher.n_layers, cfg.blocks)  # [(s_k, t_k)] for i = 1..b
        d0 = student.item_embeddings.weight.shape[1]
        n_heads = cfg.blocks - 1 if cfg.w_ms > 0 else 0
        self.ms_heads = nn.ModuleList([nn.Linear(hidden_s, d0, bias=False) for _ in range(n_heads)])

        if cfg.mode == "offline":
            for p in self.teacher.parameters():
                p.requires_grad_(False)
            self.teacher.eval()
        elif not any(p.requires_grad for p in self.teacher.parameters()):
            raise ValueError("online distillation trains the teacher, but none of its parameters has "
                             "requires_grad; pass an LLMRec whose LoRA and projections are trainable")

    # ---------------------------------------------------------------------------------- structure
    @property
    def uses_teacher_cache(self) -> bool:
        """Whether `prepare_training` caches the teacher's states (offline by default, never online)."""
        return self.cfg.mode == "offline" and self.cfg.teacher_cache is not False

    @property
    def distill_terms(self) -> list[str]:
        """Names of the loss terms this configuration computes (the keys of `parts`)."""
        terms = ["ce"]
        terms += [name for name, w in (("d_cos", self.cfg.w_cos), ("d_norm", self.cfg.w_norm),
                                       ("ms", self.cfg.w_ms)) if w > 0]
        if self.cfg.mode == "online":
            terms.append("teacher_ce")
        return terms

    def inference_parameters(self) -> int:
        """Parameters used at inference: the student's alone (no teacher, no L_ms heads)."""
        return sum(p.numel() for p in self.student.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        if self.cfg.mode == "offline":
            self.teacher.eval()  # frozen teacher: no LoRA dropout, whatever the caller asks
        return self

    def _head_logits(self, head: nn.Linear, state: torch.Tensor) -> torch.Tensor:
        """[B, n_items + 1] scores of an L_ms head on an intermediate student state [B, H]."""
        user = head(state.to(head.weight.dtype))  # (B, d0)
        items = self.student.item_embeddings.weight[1:]  # (n_items, d0)
        return _with_padding_column(user @ items.T.to(user.dtype))

    def _teacher_states(self, input: torch.Tensor) -> list[torch.Tensor]:
        if self.cfg.mode == "offline":
            store = getattr(self, "teacher_states", None)  # a `teacher_states.TeacherStateStore`, or None
            if store is not None and self.training:
                hit = store.get(input)
                if hit is not None:
                    return hit
            with torch.no_grad():
                states = self.teacher.last_token_states(input)
            if store is not None and self.training:
                store.put(input, states)
            return states
        return self.teacher.last_token_states(input)

    # ------------------------------------------------------------------------- teacher-state cache
    @torch.no_grad()
    def prepare_training(self, examples: dict[str, torch.Tensor], device: torch.device | str,
                         planned_rows: int | None = None) -> None:
        """Before the first step: cache the frozen teacher's block-end states of every training row.

        `examples`: the training dict (`input` LongTensor [N, L], ...); `device`: where training runs;
        `planned_rows`: the rows the run will still feed (training.fit passes it). Does nothing when the
        cache is off (online mode, `teacher_cache=False`), no distillation term needs the teacher, or
        the run feeds no more rows than one pass over the examples (then the live teacher costs less:
        the cpu profile's 40 steps of 16 rows see 640 of Beauty's 22,363). Call it under the autocast
        the training forward uses.
        """
        self._teacher_cache = None
        if not self.uses_teacher_cache or not self._needs_teacher_states:
            return
        if planned_rows is not None and planned_rows <= len(examples["input"]):
            return
        device = torch.device(device)
        self.teacher.to(device).eval()
        inputs = examples["input"]
        ends = [t for _, t in self.pairs]
        size = self.cfg.teacher_cache_batch_size
        chunks = []
        for start in range(0, len(inputs), size):
            states = self.teacher.last_token_states(inputs[start : start + size].to(device))
            chunks.append(torch.stack([states[t] for t in ends], dim=1))  # (b_rows, blocks, H)
        self._teacher_cache = (inputs.to(device), torch.cat(chunks))  # (N, L), (N, blocks, H)

    @property
    def _needs_teacher_states(self) -> bool:
        return self.cfg.w_cos > 0 or self.cfg.w_norm > 0

    def _cached_teacher_ends(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor] | None:
        """The cached teacher states of the pairs for this batch ([B, H] each), or None (run it live)."""
        cache = getattr(self, "_teacher_cache", None)
        if cache is None:
            return None
        if "row" not in batch:
            raise KeyError("the teacher cache is prepared, so every training batch needs batch['row'] (the rows' "
                           "indices into the examples given to prepare_training); training.fit adds it")
        inputs, states = cache
        row = batch["row"].to(states.device)
        if not torch.equal(inputs[row], batch["input"].to(inputs.device)):
            raise RuntimeError("batch['row'] does not point at the batch's inputs in the cached examples; "
                               "call prepare_training with the examples the batches are drawn from")
        picked = states[row].to(batch["input"].device)  # (B, blocks, H)
        return [picked[:, i] for i in range(picked.shape[1])]

    # ------------------------------------------------------------------- SeqRecommender interface
    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and every configured term (before weighting) in `parts`.

        `batch["target"][:, -1]` is the item to predict (0 = no target in that row).
        """
        cfg = self.cfg
        input, target = batch["input"], batch["target"][:, -1]  # (B, L), (B,)
        s_states = self.student.last_token_states(input)  # N + 1 tensors (B, H); [-1] is normed
        assert len(s_states) == self.student.n_layers + 1, "student returned the wrong number of states"
        terms: dict[str, torch.Tensor] = {}
        terms["ce"] = cross_entropy(_with_padding_column(self.student.item_logits(s_states[-1]).float()), target)

        need_teacher = cfg.w_cos > 0 or cfg.w_norm > 0 or cfg.mode == "online"
        cached = self._cached_teacher_ends(batch) if need_teacher and self.training else None
        if need_teacher:
            if cached is None:
                t_states = self._teacher_states(input)  # M + 1 tensors (B, H)
                if len(t_states) != self.teacher.n_layers + 1:
                    raise RuntimeError(f"teacher returned {len(t_states)} states, expected {self.teacher.n_layers + 1}")
                if cfg.mode == "online":
                    logits_t = self.teacher.item_logits(t_states[-1]).float()
                    terms["teacher_ce"] = cross_entropy(_with_padding_column(logits_t), target)
                t_ends = [t_states[t] for _, t in self.pairs]
            else:
                t_ends = cached  # offline only: the frozen teacher's states of these rows, computed once
            # teacher side detached: offline it carries no graph anyway; online see the header NOTE
            matched = [(s_states[s].float(), t.detach().float()) for (s, _), t in zip(self.pairs, t_ends)]
            if cfg.w_cos > 0:
                terms["d_cos"] = torch.stack([d_cos(s, t) for s, t in matched]).sum()
            if cfg.w_norm > 0:
                terms["d_norm"] = torch.stack([d_norm(s, t, squared=cfg.norm_squared) for s, t in matched]).sum()
        if cfg.w_ms > 0:
            inner = [s for s, _ in self.pairs[:-1]]  # student's intermediate block ends
            assert len(inner) == len(self.ms_heads) >= 1
            head_logits = [self._head_logits(h, s_states[k]).float() for h, k in zip(self.ms_heads, inner)]
            terms["ms"] = multi_supervision(head_logits, target)

        weights = {"ce": 1.0, "teacher_ce": 1.0, "d_cos": cfg.w_cos, "d_norm": cfg.w_norm, "ms": cfg.w_ms}
        parts = {k: v.item() for k, v in terms.items()}
        missing = set(self.distill_terms) - set(parts)
        if missing:
            raise RuntimeError(f"configured loss terms {sorted(missing)} were not computed")
        bad = {k: v for k, v in parts.items() if not math.isfinite(v)}
        if bad:
            raise FloatingPointError(f"loss terms are not finite: {bad}; lower the lr or check the teacher")
        loss = sum(weights[k] * v for k, v in terms.items())
        return loss, parts

    @torch.no_grad()
    def score_all(self, input: torch.Tensor) -> torch.Tensor:
        """The student's scores, [B, n_items + 1] (the teacher and the L_ms heads are not used)."""
        return self.student.score_all(input)

    def score_candidates(self, input: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return self.student.score_candidates(input, candidates)

    # -------------------------------------------------------------------------------- diagnostics
    @torch.no_grad()
    def block_cosine(self, input: torch.Tensor, batch_size: int = 64) -> list[dict]:
        """Mean cosine similarity of student and teacher last-token states at each block end.

        `input`: LongTensor [U, L] of histories (e.g. `data.eval_inputs(split, "test", max_len)[0]`).
        Returns one dict a block: block i (1..b), student_layer, teacher_layer, cosine (mean over the
        U rows), normed (True only for the last block, whose states are after the final RMSNorm).
        """
        was_training = self.training
        self.eval()
        device = next(self.student.parameters()).device
        sums = np.zeros(len(self.pairs))
        for start in range(0, len(input), batch_size):
            x = input[start : start + batch_size].to(device)
            s_states = self.student.last_token_states(x)
            t_states = self.teacher.last_token_states(x)
            for i, (s, t) in enumerate(self.pairs):
                cos = nn.functional.cosine_similarity(s_states[s].float(), t_states[t].float(), dim=-1)
                sums[i] += cos.sum().item()
        self.train(was_training)
        return [{"block": i + 1, "student_layer": s, "teacher_layer": t, "cosine": sums[i] / len(input),
                 "normed": i == len(self.pairs) - 1} for i, (s, t) in enumerate(self.pairs)]

    # ---------------------------------------------------------------------------------- building
    @classmethod
    def from_teacher(cls, teacher: LLMRec, backbone_spec: str, n_layers: int, cfg: DistillConfig | None = None,
                     llm_cfg: LLMRecConfig | None = None, **backbone_kw) -> "SLMRecStudent":
        """A fresh N-layer student on `backbone_spec` (the teacher's backbone), with the teacher's item table.

        `llm_cfg` defaults to the teacher's config with `n_layers` replaced; LoRA and projections are new.
        """
        import dataclasses

        llm_cfg = dataclasses.replace(llm_cfg or teacher.cfg, n_layers=n_layers)
        student = LLMRec.from_spec(backbone_spec, teacher.item_embeddings.weight.detach().cpu(), llm_cfg, **backbone_kw)
        return cls(student, teacher, cfg)
