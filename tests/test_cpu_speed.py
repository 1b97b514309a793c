"""Execution-only speed settings of the runner: the same run (hash), faster on a CPU."""

import pytest
import torch

from slmrec_lib import experiment, studies
from slmrec_lib.builders import load_backbone_spec
from slmrec_lib.data import eval_inputs
from slmrec_lib.models.llmrec import LLMRec
from slmrec_lib.profiles import get_profile


def _llm_runs(profile: str):
    prof = get_profile(profile)
    return [studies.e4srec(prof, prof.datasets[0], prof.small),
            studies.slmrec(prof, prof.datasets[0], prof.small, prof.mid)]


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_llm_runs_score_in_small_batches_on_a_cpu_with_the_same_hash(profile):
    for cfg in _llm_runs(profile):
        assert cfg.model.params.score_batch_size is None
        fast = experiment.execution_settings(cfg, "cpu")
        assert fast.model.params.score_batch_size == experiment.CPU_SCORE_ROWS
        assert fast.hash == cfg.hash
        assert experiment.execution_settings(cfg, "cuda") is cfg  # a GPU scores a batch at once


def test_other_runs_and_a_chosen_batch_are_left_alone():
    prof = get_profile("smoke")
    sasrec = studies.baseline(prof, "synthetic", "sasrec")
    assert experiment.execution_settings(sasrec, "cpu") is sasrec
    p5 = studies.p5(prof, "synthetic")
    assert experiment.execution_settings(p5, "cpu") is p5
    chosen = experiment.config.with_execution(_llm_runs("smoke")[0], score_batch_size=3)
    assert experiment.execution_settings(chosen, "cpu").model.params.score_batch_size == 3


class _Built(Exception):
    pass


def test_the_runner_builds_the_model_with_the_cpu_settings(monkeypatch, tmp_path):
    cfg = _llm_runs("smoke")[0]
    seen = []

    def build(run_cfg, split, artifacts):
        seen.append(run_cfg)
        raise _Built()

    monkeypatch.setattr(experiment, "build_model", build)
    monkeypatch.setattr(experiment, "_artifacts", lambda c, p: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(_Built):
        experiment._train_and_evaluate(cfg, get_profile("smoke"), tmp_path, quiet=True)
    assert seen[0].hash == cfg.hash
    assert seen[0].model.params.score_batch_size == experiment.CPU_SCORE_ROWS


def test_scores_do_not_depend_on_the_scoring_batch():
    cfg = _llm_runs("smoke")[0]
    split = experiment.get_split(cfg.data)
    table = torch.randn(split.n_items + 1, 16)
    models = []
    for rows in (None, experiment.CPU_SCORE_ROWS):
        params = experiment.config.with_execution(cfg, score_batch_size=rows).model.params
        torch.manual_seed(0)
        models.append(LLMRec(*load_backbone_spec(cfg.model.backbone, params.n_layers), table, params).eval())
    inputs = eval_inputs(split, "test", models[0].max_len)[0][: 3 * experiment.CPU_SCORE_ROWS + 5]
    whole, cut = (m.score_all(inputs) for m in models)
    assert torch.equal(whole.argsort(dim=1, stable=True), cut.argsort(dim=1, stable=True))
    torch.testing.assert_close(whole, cut, rtol=1e-5, atol=1e-6)
