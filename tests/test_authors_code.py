"""The authors'-code benchmark (benchmarks/authors_code): patches, backbone view, data export.

The patch tests need a copy of WujiangXu/SLMRec at 0555b8d: $AUTHORS_SOURCE (skipped without it).
"""

import json
import os
import pickle
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "authors_code"
sys.path.insert(0, str(BENCH))

import patches  # noqa: E402
import run as bench  # noqa: E402

SOURCE = os.environ.get("AUTHORS_SOURCE", "")
needs_source = pytest.mark.skipif(not (SOURCE and (Path(SOURCE) / "finetune.py").is_file()),
                                  reason="set $AUTHORS_SOURCE to a checkout of WujiangXu/SLMRec at 0555b8d")


@needs_source
def test_patches_apply_once_and_refuse_a_patched_tree(tmp_path):
    tree = patches.prepare_tree(Path(SOURCE), tmp_path / "tree")
    model = (tree / "model.py").read_text()
    assert "meta-llama/Llama-2-7b-hf" not in model.split("# self.llama_model")[0]
    assert "prepare_model_for_kbit_training as prepare_model_for_int8_training" in model
    assert "random.sample(neg_items_set," not in (tree / "utils" / "data_utils.py").read_text()
    with pytest.raises(patches.PatchError, match="expected"):
        patches.apply_patches(tree)


def test_patch_with_a_missing_fragment_names_itself(tmp_path):
    (tmp_path / "model.py").write_text("nothing here\n")
    bad = (patches.Patch("demo", "model.py", "absent", "x", 1, "test"),)
    with pytest.raises(patches.PatchError, match="patch demo"):
        patches.apply_patches(tmp_path, bad)
    assert (tmp_path / "model.py").read_text() == "nothing here\n"


def test_backbone_view_carries_rope_theta_and_llama_tokenizer_outputs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}}))
    (src / "tokenizer.json").write_text("{}")
    (src / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "TokenizersBackend"}))
    (src / "model.safetensors").write_bytes(b"weights")
    view = bench.folder_for_transformers_445(src, tmp_path / "view")
    assert json.loads((view / "config.json").read_text())["rope_theta"] == 100000.0
    tok = json.loads((view / "tokenizer_config.json").read_text())
    assert tok["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tok["model_input_names"] == ["input_ids", "attention_mask"]
    assert (view / "model.safetensors").read_bytes() == b"weights"


def test_export_writes_their_layout_with_the_books_ids(tmp_path):
    from slmrec_lib.data import leave_one_out, synthetic

    split = leave_one_out(synthetic(n_users=20, n_items=40))
    table = torch.randn(split.n_items + 1, bench.ITEM_DIM)
    bench.export_for_authors(split, table, tmp_path, "toy")
    with open(tmp_path / "sasrec_toy" / "sasrec_item.pkl", "rb") as fh:
        assert torch.equal(pickle.load(fh)["item_embedding"], table)
    frame = pd.read_csv(tmp_path / "dataset" / "sequential" / "toy.csv")
    assert list(frame.columns) == ["reviewerID", "asin"]
    first = json.loads(frame.asin[0])
    assert first == [int(i) for i in split.data.sequences[0]]
    assert first[:-1][-1] == int(split.data.sequences[0][-2])  # their test input ends where the book's does
    with pytest.raises(bench.BenchmarkError, match="128"):
        bench.export_for_authors(split, torch.randn(split.n_items + 1, 64), tmp_path, "toy")


def test_their_log_gives_runtime_and_own_test(tmp_path):
    (tmp_path / "log.txt").write_text('{"loss": 1.0, "step": 1}\n{"train_runtime": 21.5, "step": 9}\n'
                                      '{"test_ndcg@10": 0.14, "test_mrr": 0.12}')
    runtime, test = bench._their_log(tmp_path)
    assert runtime == 21.5 and test["test_ndcg@10"] == 0.14
