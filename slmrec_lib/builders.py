"""RunConfig -> model, resolving dependencies (item table, teacher) as runs of their own."""

from __future__ import annotations

from dataclasses import fields, replace

import torch

from .data import Split
from .experiment import ModelConfig, RunConfig, get_split, run, run_dir


def _make(config_cls, params: dict, what: str):
    """A config dataclass from a dict; an unknown key is an error, not ignored."""
    known = {f.name for f in fields(config_cls)}
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"{what}: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
    return config_cls(**params)


def load_backbone_spec(spec: str):
    """`backbones.load_backbone`, plus "tiny:<layers>" for a deeper tiny random model (smoke runs)."""
    from . import backbones

    if spec.startswith("tiny:"):
        return backbones.tiny_backbone(torch.float32, num_hidden_layers=int(spec.split(":", 1)[1]))
    return backbones.load_backbone(spec)


def item_table_config(cfg: RunConfig) -> RunConfig:
    """The SASRec run whose item embeddings the LLM models read (seed 0, shared by every LLM run)."""
    table = cfg.model.item_table
    model = ModelConfig(kind="sasrec", params=dict(table.get("params", {})), targets="all")
    return RunConfig(cfg.data, model, train=dict(table.get("train", {})), protocols=cfg.protocols, seed=0,
                     label="SASRec item table", eval_users=cfg.eval_users)


def teacher_config(cfg: RunConfig) -> RunConfig:
    """The trained teacher of an offline student: an E4SRec run of `teacher_layers` layers."""
    m = cfg.model
    model = replace(m, kind="e4srec", layers=m.teacher_layers, teacher_layers=None, teacher_train={}, distill={})
    return RunConfig(cfg.data, model, train=dict(m.teacher_train), protocols=cfg.protocols, seed=cfg.seed,
                     label=f"E4SRec_{m.teacher_layers}", eval_users=cfg.eval_users)


def dependencies(cfg: RunConfig) -> list[RunConfig]:
    """The runs `cfg` reads, each after its own dependencies: the item table of the E4SRec and SLMRec
    runs, and an offline student's teacher. A scheduler trains these first (`slmrec_lib.run`)."""
    out: list[RunConfig] = []
    if cfg.model.kind in ("e4srec", "slmrec"):
        out.append(item_table_config(cfg))
    if cfg.model.kind == "slmrec" and cfg.model.distill.get("mode", "offline") == "offline":
        teacher = teacher_config(cfg)
        out += [d for d in dependencies(teacher) if d.hash not in {o.hash for o in out}] + [teacher]
    return out


def item_table(cfg: RunConfig, profile: str) -> torch.Tensor:
    dep = item_table_config(cfg)
    run(dep, profile)
    path = run_dir(dep, profile) / "item_table.pt"
    if not path.exists():  # rows saved (e.g. committed to git) but the weights, never committed, are not here
        raise FileNotFoundError(
            f"the item table run {dep.hash} ({dep.data.dataset}) has saved results but no weights: {path} is "
            "missing. Copy item_table.pt from the machine that trained it into that folder, or move the folder "
            "away so that the table is trained again (the LLM runs that used the old table keep their rows)."
        )
    return torch.load(path)


def _llmrec(cfg: RunConfig, profile: str, layers: int | None, table: torch.Tensor):
    from .models.llmrec import LLMRec, LLMRecConfig

    backbone, tokenizer = load_backbone_spec(cfg.model.backbone)
    llm_cfg = _make(LLMRecConfig, dict(cfg.model.params, n_layers=layers), "LLMRec")
    return LLMRec(backbone, tokenizer, table, llm_cfg)


def build_model(cfg: RunConfig, split: Split, profile: str):
    kind, params = cfg.model.kind, dict(cfg.model.params)
    if kind == "popularity":
        from .models.popularity import Popularity

        if params:
            raise ValueError(f"Popularity has no settings, got {sorted(params)}")
        return Popularity.from_sequences(split.train, split.n_items)
    if kind == "sasrec":
        from .models.sasrec import SASRec, SASRecConfig

        return SASRec(split.n_items, _make(SASRecConfig, params, "SASRec"))
    if kind == "gru4rec":
        from .models.gru4rec import GRU4Rec, GRU4RecConfig

        return GRU4Rec(split.n_items, _make(GRU4RecConfig, params, "GRU4Rec"))
    if kind == "bert4rec":
        from .models.bert4rec import BERT4Rec, BERT4RecConfig

        return BERT4Rec(split.n_items, _make(BERT4RecConfig, params, "BERT4Rec"))
    if kind == "e4srec":
        return _llmrec(cfg, profile, cfg.model.layers, item_table(cfg, profile))
    if kind == "slmrec":
        from .models.slmrec import DistillConfig, SLMRecStudent

        table = item_table(cfg, profile)
        distill = _make(DistillConfig, dict(cfg.model.distill), "DistillConfig")
        student = _llmrec(cfg, profile, cfg.model.layers, table)
        teacher = _llmrec(cfg, profile, cfg.model.teacher_layers, table)
        if distill.mode == "offline":
            dep = teacher_config(cfg)
            run(dep, profile)
            weights = torch.load(run_dir(dep, profile) / "model.pt")
            missing = set(weights) - {k for k, _ in teacher.named_parameters()}
            if missing:
                raise RuntimeError(f"teacher checkpoint of run {dep.hash} has weights the model lacks: {sorted(missing)[:3]}")
            teacher.load_state_dict(weights, strict=False)
        return SLMRecStudent(student, teacher, distill)
    if kind == "p5":
        from .models.p5 import P5Config, P5Rec

        p5_cfg = _make(P5Config, dict(params, backbone=cfg.model.backbone, n_layers=cfg.model.layers), "P5Config")
        return P5Rec(p5_cfg, split.n_items, split.train, backbone=load_backbone_spec(cfg.model.backbone))
    raise ValueError(f"unknown model kind {kind!r}")
