"""The runs behind each notebook (research question), as lists of RunConfig for a profile.

Labels follow the paper with our depths: E4SRec_k keeps the first k layers; SLMRec_{n<-m} is an
n-layer student of an m-layer teacher. Which of the paper's rows a run plays is the book's
(`book.paper_row`, from the run's tidy columns).
"""

from __future__ import annotations

from dataclasses import replace

from .config import DataConfig, ModelConfig, RunConfig
from .evaluation import EvalProtocol
from .models.slmrec import DistillConfig
from .profiles import Profile, get_profile

# SLMRec_{n<-m} variants of the paper's main table: D_cos alone, then with D_norm and/or L_ms.
VARIANTS = {
    "": dict(w_norm=0.0, w_ms=0.0),
    " +D_norm": dict(w_ms=0.0),
    " +L_ms": dict(w_norm=0.0),
    " +D_norm +L_ms": dict(),
}
BASELINES = ("popularity", "gru4rec", "bert4rec", "sasrec")


def protocols(prof: Profile) -> tuple[EvalProtocol, ...]:
    out = (EvalProtocol("sampled", prof.n_negatives, 0),)
    return out + (EvalProtocol("full", 0, 0),) if prof.full_ranking else out


def data(prof: Profile, dataset: str) -> DataConfig:
    return DataConfig(dataset=dataset, max_users=prof.max_users)


def _run(prof: Profile, dataset: str, model: ModelConfig, train, seed: int, role: str = "") -> RunConfig:
    """A run on the profile's data, protocols and evaluation users."""
    return RunConfig(data(prof, dataset), model, train=train, protocols=protocols(prof), seed=seed,
                     eval_users=prof.eval_users, role=role)


def baseline(prof: Profile, dataset: str, kind: str, seed: int = 0) -> RunConfig:
    if kind == "popularity":
        return _run(prof, dataset, ModelConfig("popularity"), None, seed)
    return _run(prof, dataset, ModelConfig(kind, prof.baseline_params[kind], targets="all"), prof.baseline_train,
                seed)


def item_run(prof: Profile, dataset: str) -> RunConfig:
    """The SASRec whose item embeddings every LLM run of the profile reads (seed 0, one a dataset)."""
    return _run(prof, dataset, ModelConfig("sasrec", prof.item_table_params, targets="all"), prof.baseline_train,
                0, role="item table")


def _llm_model(prof: Profile, dataset: str, kind: str, layers: int, **extra) -> ModelConfig:
    return ModelConfig(kind, replace(prof.llm_params, n_layers=layers), targets=prof.llm_targets,
                       backbone=prof.backbone, item_run=item_run(prof, dataset), **extra)


def e4srec(prof: Profile, dataset: str, layers: int, seed: int = 0) -> RunConfig:
    return _run(prof, dataset, _llm_model(prof, dataset, "e4srec", layers), prof.teacher_train, seed)


def slmrec(prof: Profile, dataset: str, student: int, teacher: int, seed: int = 0, variant: str = " +D_norm +L_ms",
           **distill) -> RunConfig:
    """SLMRec_{student<-teacher}: a VARIANTS entry (which losses are on) and other DistillConfig fields."""
    settings = DistillConfig(**dict(VARIANTS[variant], **distill))
    trained = e4srec(prof, dataset, teacher, seed) if settings.mode == "offline" else None
    model = _llm_model(prof, dataset, "slmrec", student, teacher_layers=teacher, teacher=trained, distill=settings)
    return _run(prof, dataset, model, prof.student_train, seed)


def p5(prof: Profile, dataset: str, seed: int = 0) -> RunConfig:
    params = replace(prof.p5_params, backbone=prof.backbone, n_layers=prof.depth)
    model = ModelConfig("p5", params, targets="last", backbone=prof.backbone)
    # scoring 1000 candidates by likelihood is slow: validation uses the evaluation's user count too
    train = replace(prof.p5_train, valid_users=prof.p5_eval_users)
    return RunConfig(data(prof, dataset), model, train=train, protocols=protocols(prof)[:1], seed=seed,
                     eval_users=prof.p5_eval_users)


def _unique(cfgs: list[RunConfig]) -> list[RunConfig]:
    seen, out = set(), []
    for c in cfgs:
        if c.hash not in seen:
            seen.add(c.hash)
            out.append(c)
    return out


def layer_scan(profile: str | Profile, dataset: str) -> list[RunConfig]:
    prof = get_profile(profile)
    seed = prof.seeds[0]
    return [e4srec(prof, dataset, k, seed) for k in prof.scan_depths] + [baseline(prof, dataset, "sasrec", seed)]


def main_table(profile: str | Profile, dataset: str, with_p5: bool = True) -> list[RunConfig]:
    prof = get_profile(profile)
    cfgs = []
    for seed in prof.seeds:
        cfgs += [baseline(prof, dataset, kind, seed) for kind in BASELINES]
        cfgs += [e4srec(prof, dataset, k, seed) for k in (prof.depth, prof.mid, prof.small)]
        for student, teacher in ((prof.mid, prof.depth), (prof.small, prof.depth)):
            if student < teacher:
                cfgs.append(slmrec(prof, dataset, student, teacher, seed, variant=""))
        cfgs += [slmrec(prof, dataset, prof.small, prof.mid, seed, variant=v) for v in VARIANTS]
    if with_p5:  # every seed, like the other rows
        cfgs += [p5(prof, dataset, seed) for seed in prof.seeds]
    return _unique(cfgs)


def ablation(profile: str | Profile, dataset: str) -> list[RunConfig]:
    prof = get_profile(profile)
    cfgs = []
    for seed in prof.seeds:
        cfgs += [e4srec(prof, dataset, prof.small, seed), e4srec(prof, dataset, prof.mid, seed)]
        cfgs += [slmrec(prof, dataset, prof.small, prof.mid, seed, variant=v) for v in VARIANTS]
    return _unique(cfgs)


def online_kd(profile: str | Profile, dataset: str) -> list[RunConfig]:
    prof = get_profile(profile)
    cfgs = []
    for seed in prof.seeds:
        cfgs.append(slmrec(prof, dataset, prof.small, prof.mid, seed))
        cfgs.append(slmrec(prof, dataset, prof.small, prof.mid, seed, mode="online"))
    return _unique(cfgs)


def block_count(profile: str | Profile, dataset: str) -> list[RunConfig]:
    prof = get_profile(profile)
    blocks = [b for b in prof.block_counts if b <= prof.small]
    # b = 1 has no intermediate block end for the L_ms heads, so its run is D_cos + D_norm only
    return _unique([slmrec(prof, dataset, prof.small, prof.mid, seed, " +D_norm" if b < 2 else " +D_norm +L_ms",
                           blocks=b)
                    for seed in prof.seeds for b in blocks])


# ---------------------------------------------------------------------------- the baseline ladder (08)
# SASRec as the literature and the authors train it; each rung is settings of the one model.
#   "ce": cross-entropy over all items, every position a target (the book's SASRec row)
#   "bce": one sampled negative a position excluding the user's history, post-LN blocks with ReLU and a
#          feed-forward as wide as the hidden size (Kang & McAuley 2018, as S3-Rec / ICLRec run it)
#   "authors": the SLMRec authors' SASRec script: cross-entropy on each user's last target only,
#          selected on validation NDCG@10, 128 wide (the item table they feed the LLM)
RUNGS = ("ce", "bce", "authors")


def sasrec_rung(prof: Profile, dataset: str, rung: str, seed: int = 0, width: int | None = None) -> RunConfig:
    """SASRec of one rung; `width` sets the hidden size (128 for an item table the LLMs read)."""
    base = prof.baseline_params["sasrec"]
    if width is not None:
        base = replace(base, hidden=width)
    if rung == "ce":
        model, train = ModelConfig("sasrec", base, targets="all"), prof.baseline_train
    elif rung == "bce":
        model = ModelConfig("sasrec", replace(base, loss="bce", negatives="history", block="post_ln_relu",
                                               inner=base.hidden), targets="all")
        train = prof.baseline_train
    elif rung == "authors":
        model = ModelConfig("sasrec", replace(base, hidden=width or prof.item_table_params.hidden), targets="last")
        train = replace(prof.baseline_train, select_metric="NDCG@10")
    else:
        raise ValueError(f"unknown SASRec rung {rung!r}; known: {', '.join(RUNGS)}")
    return _run(prof, dataset, model, train, seed)


def _reading(cfg: RunConfig, table: RunConfig) -> RunConfig:
    """An LLM run that reads another SASRec's item embeddings."""
    return replace(cfg, model=replace(cfg.model, item_run=replace(table, role="item table")))


def baselines(profile: str | Profile, dataset: str) -> list[RunConfig]:
    """The ladder on every seed, and E4SRec_small / E4SRec_depth reading the BCE rung's item table
    beside the main table's (the CE rung's): does a weaker table make a weaker LLM?"""
    prof = get_profile(profile)
    cfgs = [sasrec_rung(prof, dataset, rung, seed) for seed in prof.seeds for rung in RUNGS]
    bce_table = sasrec_rung(prof, dataset, "bce", 0, width=prof.item_table_params.hidden)
    depths = control_depths(prof)
    for k in sorted({depths[0], depths[-1]}):
        cfgs += [e4srec(prof, dataset, k, prof.seeds[0]), _reading(e4srec(prof, dataset, k, prof.seeds[0]), bce_table)]
    return _unique(cfgs)


# ---------------------------------------------------------------------------- depth controls (09)
def shuffled_protocols(prof: Profile) -> tuple[EvalProtocol, ...]:
    """The profile's protocols, then each again on histories in a seeded random order."""
    plain = protocols(prof)
    return plain + tuple(replace(p, shuffle=True) for p in plain)


def random_backbone(spec: str) -> str:
    """The spec of a backbone of the same shape with random, seeded weights."""
    if spec.startswith("tiny:"):
        return "tiny-random:" + spec.split(":", 1)[1]
    if spec == "smollm2":
        return "smollm2-random"
    if "llama-2-7b" in spec.lower():  # the paper's backbone, by hub id or folder: the same shape, random
        return "llama2-7b-shape"
    raise ValueError(f"no random-weight twin of backbone {spec!r} (known: smollm2, tiny:<layers>, Llama-2-7B)")


def _control(cfg: RunConfig, prof: Profile, backbone: str | None = None, targets: str | None = None,
             **params) -> RunConfig:
    """An LLM run of the depth controls: scored in fp32 and also on shuffled histories."""
    model = replace(cfg.model, params=replace(cfg.model.params, score_fp32=True, **params),
                    backbone=backbone or cfg.model.backbone, targets=targets or cfg.model.targets)
    return replace(cfg, model=model, protocols=shuffled_protocols(prof))


def control_depths(prof: Profile) -> list[int]:
    """The E4SRec depths of the depth controls: the profile's `control_depths`, else small / mid / depth."""
    return sorted(set(prof.control_depths or (prof.small, prof.mid, prof.depth)))


def depth_controls(profile: str | Profile, dataset: str) -> list[RunConfig]:
    """What limits depth (issue: "why depth does not pay"), every seed of the profile: pretrained vs random
    weights at small / mid / depth layers, the item table trainable at small and depth, every prefix a
    training row at small; SASRec on shuffled histories beside them (depths: `control_depths`). Every run is
    also scored on shuffled histories (order use) and reads the profile's item table. Within a seed the
    slowest runs come first (every prefix a row, then the deepest), so that parallel workers end together."""
    prof = get_profile(profile)
    depths = control_depths(prof)
    cfgs = []
    for seed in prof.seeds:
        llm = [_control(e4srec(prof, dataset, prof.small, seed), prof, targets="prefixes")]
        for k in sorted(depths, reverse=True):
            plain = e4srec(prof, dataset, k, seed)
            llm += [_control(plain, prof), _control(plain, prof, backbone=random_backbone(prof.backbone))]
            if k in (depths[0], depths[-1]):
                llm.append(_control(plain, prof, train_item_table=True))
        cfgs += llm + [replace(baseline(prof, dataset, "sasrec", seed), protocols=shuffled_protocols(prof))]
    return _unique(cfgs)


STUDIES = {"layer_scan": layer_scan, "main_table": main_table, "ablation": ablation, "online_kd": online_kd,
           "block_count": block_count, "baselines": baselines, "depth_controls": depth_controls}
# the studies of the paper's research questions (the book's first seven notebooks)
PAPER_STUDIES = ("layer_scan", "main_table", "ablation", "online_kd", "block_count")


def study(name: str, profile: str | Profile, dataset: str) -> list[RunConfig]:
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; known: {', '.join(STUDIES)}")
    return STUDIES[name](profile, dataset)

