"""P5Rec (the generative Open-P5 baseline): identifiers, constrained decoding, cached candidate scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from slmrec_lib import backbones
from slmrec_lib.models.p5 import EOS, ItemCodec, P5Config, P5Rec, sequential_indexing


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny model's matrices are too small to gain from threads; on a shared CPU a second thread
    mostly waits for the first. Restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_p5(n_items=40, seqs=None, seed=0, **cfg):
    """A P5Rec on the tiny random backbone; LoRA weights randomised so the adapter path is exercised."""
    rng = np.random.default_rng(seed)
    if seqs is None:
        seqs = [rng.choice(np.arange(1, n_items + 1), size=int(rng.integers(3, 9)), replace=False) for _ in range(12)]
    cfg = P5Config(**{"backbone": "tiny", **cfg})
    torch.manual_seed(seed)
    model = P5Rec(cfg, n_items, seqs)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model.eval()


def brute_force_loglik(model: P5Rec, row: torch.Tensor, item: int) -> float:
    """log p(identifier | prompt) from one full forward of prompt + answer, no cache, no padding."""
    prompt, answer = model._prompt_ids(row), model.codec.tokens(item)
    ids = torch.tensor([prompt + answer])
    hidden = model.lm(input_ids=ids).last_hidden_state[0]  # (T, H)
    logp = F.log_softmax(hidden @ model._head_weight().T, dim=-1)  # (T, V)
    return float(sum(logp[len(prompt) - 1 + k, t].detach() for k, t in enumerate(answer)))


def test_sequential_indexing_numbers_items_by_first_appearance():
    seqs = [np.array([5, 2, 5]), np.array([3, 2, 7])]
    codes = sequential_indexing(seqs, n_items=8, offset=1001)
    assert codes[0] == -1
    assert [codes[i] for i in (5, 2, 3, 7)] == [1001, 1002, 1003, 1004]
    assert [codes[i] for i in (1, 4, 6, 8)] == [1005, 1006, 1007, 1008]  # unseen items follow, by id
    with pytest.raises(ValueError, match="outside"):
        sequential_indexing([np.array([9])], n_items=8)


@pytest.mark.parametrize("offset", [1, 1001])
def test_identifiers_round_trip(offset):
    n_items = 150  # with offset 1, "1" is a prefix of "10" and "100": EOS must tell them apart
    codes = sequential_indexing([np.arange(n_items, 0, -1)], n_items, offset)
    _, tok = backbones.load_backbone("tiny")
    codec = ItemCodec(codes, tok)
    for item in range(1, n_items + 1):
        assert codec.decode_tokens(codec.tokens(item)) == item
        assert codec.decode_symbols(codec.symbols(item)) == item
        assert codec.symbols(item)[-1] == EOS and str(codes[item]) == "".join(map(str, codec.symbols(item)[:-1]))
        assert "".join(tok.convert_ids_to_tokens(codec.tokens(item)[:-1])) == str(codes[item])
    assert codec.decode_symbols([9, 9, 9, 9]) is None  # not an identifier
    assert codec.decode_tokens([tok.eos_token_id]) is None


def test_prompt_pieces_equal_the_tokenised_text():
    model = tiny_p5()
    row = torch.tensor([0, 0, 7, 3, 12])
    text = model.prompt_text(row)
    assert model.codec.strings[7] in text and text.endswith("Response: ")
    assert model._prompt_ids(row) == model.tokenizer.encode(text, add_special_tokens=False)
    long_row = torch.arange(1, 31)
    assert model.prompt_text(long_row).count(",") == model.max_len - 1  # only the last max_len items


def test_candidate_scores_equal_a_full_forward_without_cache():
    model = tiny_p5(n_items=120, id_offset=1, chunk_rows=7)  # ids of 1-3 digits, several chunks
    inp = torch.tensor([[0, 0, 0, 5, 9], [11, 2, 3, 4, 8], [0, 0, 0, 0, 1]])  # different prompt lengths
    cand = torch.tensor([[1, 10, 100, 5, 77], [8, 120, 12, 1, 3], [2, 20, 119, 60, 1]])
    scores = model.score_candidates(inp, cand)
    expect = torch.tensor([[brute_force_loglik(model, inp[b], int(c)) for c in cand[b]] for b in range(3)])
    torch.testing.assert_close(scores, expect, atol=1e-4, rtol=1e-4)
    model.cfg.score_users = 2  # users scored in groups of 2 (then 1): the same scores
    torch.testing.assert_close(model.score_candidates(inp, cand), scores, atol=1e-6, rtol=1e-6)
    model.cfg.chunk_rows = 1000  # every level in one forward: the same scores
    torch.testing.assert_close(model.score_candidates(inp, cand), scores, atol=1e-6, rtol=1e-6)


def test_training_loss_is_the_answer_negative_loglik():
    model = tiny_p5(n_items=60)
    inp = torch.tensor([[0, 0, 4, 9, 2]])
    tgt = torch.zeros_like(inp)
    tgt[0, -1] = 17
    loss, parts = model({"input": inp, "target": tgt})
    n_answer = len(model.codec.tokens(17))
    nll = -float(model.score_candidates(inp, torch.tensor([[17]]))[0, 0])
    assert parts["lm"] == pytest.approx(nll / n_answer, rel=1e-4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


@pytest.mark.parametrize("beam", [1, 7])
def test_constrained_decoding_only_produces_valid_items(beam):
    n_items = 150  # offset 1: identifiers of 1-3 digits that are prefixes of each other
    model = tiny_p5(n_items=n_items, id_offset=1, beam_width=beam, chunk_rows=5)
    inp = torch.tensor([[0, 0, 3, 14, 15], [9, 2, 6, 5, 35], [0, 0, 0, 0, 0]])
    scores = model.score_all(inp)
    assert scores.shape == (3, n_items + 1)
    assert torch.isneginf(scores[:, 0]).all()
    finite = torch.isfinite(scores)
    assert (finite.sum(1) == beam).all()
    assert not torch.isnan(scores).any() and not (scores == float("inf")).any()
    # every finite score is the exact log-likelihood of a real item's identifier
    for b in range(3):
        items = finite[b].nonzero().flatten()
        torch.testing.assert_close(model.score_candidates(inp[b : b + 1], items[None]), scores[b, items][None])
    top = model.generate(inp, k=beam)
    assert ((top >= 1) & (top <= n_items)).all()


def test_beam_search_finds_the_best_identifier():
    """With a width covering all prefixes, the beam's best item is the argmax of exact scoring."""
    model = tiny_p5(n_items=30, id_offset=1, beam_width=30)
    inp = torch.tensor([[0, 4, 8, 15, 16]])
    exact = model.score_candidates(inp, torch.arange(1, 31)[None])
    beam = model.score_all(inp)
    assert int(beam.argmax()) == int(exact.argmax()) + 1
    torch.testing.assert_close(beam[:, 1:], exact)


def test_overfit_candidate_scoring_ranks_the_memorised_target_first():
    """A handful of users, many steps: the memorised target scores first and is what beam search writes.

    The tiny backbone's tied head is frozen random embeddings (std 0.02, hidden 32): its logits stay
    within about +-1, too flat to memorise anything. Its final norm gain is raised to 30 so that a
    confident next-token distribution is reachable; the rest is the model as it is.
    """
    torch.manual_seed(0)
    n_items = 50
    rows = [[0, 0, 0, 3], [0, 0, 22, 5], [0, 40, 41, 2], [7, 30, 18, 1]]  # histories of 1-4 items
    targets = [12, 33, 27, 44]
    seqs = [np.array([i for i in r if i] + [t]) for r, t in zip(rows, targets)]
    base, tok = backbones.load_backbone("tiny")
    with torch.no_grad():
        base.norm.weight.fill_(30.0)
    cfg = P5Config(backbone="tiny", lora_targets=("q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"),
                   lora_dropout=0.0)
    model = P5Rec(cfg, n_items, seqs, backbone=(base, tok))
    inp = torch.tensor(rows)
    tgt = torch.zeros_like(inp)
    tgt[:, -1] = torch.tensor(targets)
    cand = torch.tensor([[t] + [i for i in range(1, n_items + 1) if i != t] for t in targets])  # (4, 50)
    model.eval()
    assert not (model.score_candidates(inp, cand).argmax(1) == 0).all()  # not first before training
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(100):
        loss, _ = model({"input": inp, "target": tgt})
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    scores = model.score_candidates(inp, cand)
    assert (scores.argmax(1) == 0).all(), (scores.argmax(1), float(loss))
    assert model.generate(inp, k=1)[:, 0].tolist() == targets


def test_errors_say_what_is_wrong():
    model = tiny_p5()
    with pytest.raises(ValueError, match="not an item id"):
        model.score_candidates(torch.tensor([[1, 2]]), torch.tensor([[0, 3]]))
    with pytest.raises(ValueError, match="no row"):
        model({"input": torch.tensor([[1, 2]]), "target": torch.zeros(1, 2, dtype=torch.long)})
    with pytest.raises(ValueError, match="history"):
        P5Config(template="no placeholder")


def test_untied_backbone_folder_uses_its_own_lm_head(tmp_path):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    causal = LlamaForCausalLM(backbones.tiny_config(tie_word_embeddings=False))
    causal.save_pretrained(tmp_path)
    backbones.tiny_tokenizer().save_pretrained(tmp_path)
    model = P5Rec(P5Config(backbone=str(tmp_path)), 30, [np.arange(1, 31)])
    torch.testing.assert_close(model._head_weight(), causal.lm_head.weight.detach())
    assert not torch.equal(model._head_weight(), model.lm.get_input_embeddings().weight)


@pytest.mark.slow
def test_smollm2_prompt_pieces_equal_the_tokenised_text():
    """SmolLM2 splits numbers into digits: the assembled prompt + answer is the text's own tokenisation."""
    pytest.importorskip("gguf")
    model = P5Rec(P5Config(backbone="smollm2", n_layers=1), 12101, [np.arange(1, 12102)])
    row = torch.tensor([0, 5, 9000, 12101, 77])
    text = model.prompt_text(row) + model.codec.strings[10500]
    ids = model._prompt_ids(row) + model.codec.tokens(10500)[:-1]
    assert ids == model.tokenizer.encode(text, add_special_tokens=False)


def test_chunk_size_benchmark_agrees_across_sizes_and_keeps_other_rows(tmp_path):
    import importlib.util

    from slmrec_lib import paths

    spec = importlib.util.spec_from_file_location("bench_p5_chunks", paths.REPO_ROOT / "benchmarks" / "bench_p5_chunks.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "p5_chunk_rows.csv"
    assert bench.main(["--profile", "smoke", "--dataset", "synthetic", "--users", "3", "--chunk-rows", "5", "300",
                       "--out", str(out)]) == 0
    assert bench.main(["--profile", "smoke", "--dataset", "synthetic", "--users", "3", "--chunk-rows", "300", "40",
                       "--out", str(out)]) == 0
    rows = pd.read_csv(out)
    assert sorted(rows.chunk_rows) == [5, 40, 300]  # the second call replaced its own size's row only
    assert (rows.max_abs_diff < 1e-5).all() and rows.same_positive_ranks.all()
    assert (rows.users == 3).all() and (rows.seconds_per_user > 0).all()
