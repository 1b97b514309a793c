"""The E4SRec-style LLM recommender: surgery, trainable set, block indexing, shared prefix, smoke training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slmrec_lib.backbones import count_params, load_backbone, tiny_backbone
from slmrec_lib.models.llmrec import LLMRec, LLMRecConfig, block_output

N_ITEMS, D0 = 40, 8


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: one thread is many times faster than two on a shared, busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(n_backbone_layers=2, seed=0, **cfg) -> LLMRec:
    backbone, tok = tiny_backbone(num_hidden_layers=n_backbone_layers)
    torch.manual_seed(seed)
    table = torch.randn(N_ITEMS + 1, D0)
    return LLMRec(backbone, tok, table, LLMRecConfig(**{"max_len": 6, **cfg}))


def batch(seed=1, B=5, L=6):
    g = torch.Generator().manual_seed(seed)
    inp = torch.randint(1, N_ITEMS + 1, (B, L), generator=g)
    inp[0, :4] = 0  # a short, left-padded history
    inp[1, :1] = 0
    tgt = torch.zeros(B, L, dtype=torch.long)
    tgt[:, -1] = torch.randint(1, N_ITEMS + 1, (B,), generator=g)
    return {"input": inp, "target": tgt}


def test_truncated_model_has_k_layers_and_the_parameter_count_k_implies():
    full, _ = tiny_backbone(num_hidden_layers=4)
    per_layer, full_count = count_params(full.layers[0]), count_params(full)
    H, I, r = 32, 64, 16
    for k in (1, 3, 4):
        model = make(n_backbone_layers=4, n_layers=k)
        assert len(model.decoder.layers) == k == model.decoder.config.num_hidden_layers == model.n_layers
        lora = k * 3 * r * (H + I)  # gate (H->I), up (H->I), down (I->H): A is r x in, B is out x r
        projections = (D0 * H + H) + H * D0  # input_proj with bias, score without
        assert count_params(model, trainable_only=True) == lora + projections
        frozen_backbone = full_count - (4 - k) * per_layer
        assert count_params(model) == frozen_backbone + lora + projections + (N_ITEMS + 1) * D0
        assert len(model.last_token_states(batch()["input"])) == k + 1
    with pytest.raises(ValueError):
        make(n_backbone_layers=2, n_layers=3)


def test_only_lora_and_the_two_projections_train():
    model = make()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(".lora_A." in n or ".lora_B." in n or n.split(".")[0] in ("input_proj", "score") for n in names)
    assert {n.split(".")[0] for n in names} == {"llm", "input_proj", "score"}
    assert all(any(t in n for t in ("gate_proj", "up_proj", "down_proj")) for n in names if n.startswith("llm"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    for _ in range(2):  # LoRA B starts at 0, so A moves from the second step on
        loss, _ = model(batch())
        loss.backward()
        opt.step()
        opt.zero_grad()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) != p.requires_grad, f"{n} (requires_grad={p.requires_grad})"


def test_block_output_indexes_transformers_hidden_states():
    backbone, _ = tiny_backbone(num_hidden_layers=3)
    seen = []
    hooks = [layer.register_forward_hook(lambda m, i, o: seen.append(o[0] if isinstance(o, tuple) else o))
             for layer in backbone.layers]
    x = torch.randn(2, 5, 32)
    out = backbone(inputs_embeds=x, output_hidden_states=True)
    for h in hooks:
        h.remove()
    hs = out.hidden_states
    assert torch.equal(block_output(hs, 0), x[:, -1])
    for k in (1, 2):  # intermediate: the raw residual stream after block k, no final norm
        torch.testing.assert_close(block_output(hs, k), seen[k - 1][:, -1])
    torch.testing.assert_close(block_output(hs, 3), backbone.norm(seen[2])[:, -1])  # last: after the norm
    torch.testing.assert_close(block_output(hs, 3), out.last_hidden_state[:, -1])
    assert not torch.allclose(block_output(hs, 3), seen[2][:, -1])
    with pytest.raises(IndexError):
        block_output(hs, 4)


def test_last_token_states_end_in_the_state_the_score_head_reads():
    model = make().eval()
    inp = batch()["input"]
    with torch.no_grad():
        states = model.last_token_states(inp)
        torch.testing.assert_close(states[-1], model.user_state(inp))
        torch.testing.assert_close(model.score_all(inp)[:, 1:], model.item_logits(states[-1]))


def test_shared_prefix_matches_the_plain_forward():
    model = make(lora_dropout=0.0)  # default (long) instruction: 270 character tokens
    with torch.no_grad():  # give LoRA non-zero weights so the prefix depends on them
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
    b = batch()
    model.eval()
    model.cfg.share_prefix = False
    plain_scores, plain_states = model.score_all(b["input"]), model.last_token_states(b["input"])
    model.cfg.share_prefix = True
    torch.testing.assert_close(model.score_all(b["input"]), plain_scores, rtol=1e-5, atol=1e-5)
    assert model._prefix_memo is not None  # computed once ...
    memo = model._prefix_memo[1]
    model.score_all(b["input"][:2])
    assert model._prefix_memo[1] is memo  # ... and reused while the weights stay the same
    for a, c in zip(model.last_token_states(b["input"]), plain_states):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # a weight update must invalidate the cached prefix
        next(p for n, p in model.named_parameters() if "lora_B" in n).add_(0.5)
    shared = model.score_all(b["input"])
    assert model._prefix_memo[1] is not memo
    model.cfg.share_prefix = False
    torch.testing.assert_close(shared, model.score_all(b["input"]), rtol=1e-5, atol=1e-5)

    # training: the same loss and the same gradients (dropout 0)
    model.train()
    grads = {}
    for share in (False, True):
        model.cfg.share_prefix = share
        model.zero_grad()
        loss, _ = model(b)
        loss.backward()
        grads[share] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    torch.testing.assert_close(grads[True][0], grads[False][0])
    for n, g in grads[False][1].items():
        torch.testing.assert_close(grads[True][1][n], g, rtol=1e-4, atol=1e-6, msg=n)


def test_shared_prefix_under_bf16_autocast_stays_close():
    model = make(instruction="History of the user:\n").eval()
    inp = batch()["input"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        shared = model.score_all(inp)
        model.cfg.share_prefix = False
        plain = model.score_all(inp)
    assert torch.isfinite(shared[:, 1:]).all()
    torch.testing.assert_close(shared, plain, rtol=0.05, atol=0.05)


def test_padded_item_slots_are_masked():
    model = make().eval()
    inp = batch()["input"]
    before = model.score_all(inp)
    with torch.no_grad():
        model.item_embeddings.weight[0].normal_(0, 5.0)  # what a padded slot would read, were it visible
    after = model.score_all(inp)
    torch.testing.assert_close(after, before)
    assert before[:, 0].eq(float("-inf")).all()


def test_smoke_training_through_the_shared_loop_lowers_the_loss(tmp_path):
    from slmrec_lib.data import leave_one_out, synthetic, train_examples
    from slmrec_lib.training import TrainConfig, fit

    split = leave_one_out(synthetic(n_users=120, n_items=N_ITEMS, seed=0, max_len=12))
    examples = train_examples(split, max_len=6, targets="last")
    model = make(instruction="History:\n")
    probe = {k: v[:64] for k, v in examples.items()}
    model.eval()
    with torch.no_grad():
        before, _ = model(probe)
    cfg = TrainConfig(lr=5e-3, batch_size=32, epochs=6, warmup_steps=2, eval_every=None, patience=None,
                      progress=False, seed=0)
    result = fit(model, examples, None, cfg, tmp_path / "run")  # may move the model to a GPU
    device = next(model.parameters()).device
    with torch.no_grad():
        after, _ = model({k: v.to(device) for k, v in probe.items()})
    assert result.steps == 6 * int(np.ceil(len(examples["input"]) / 32))
    assert after.item() < before.item() - 0.3, (before.item(), after.item())


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="max_len"):
        LLMRecConfig(max_len=0)
    backbone, tok = load_backbone("tiny")
    with pytest.raises(ValueError, match="item_embeddings"):
        LLMRec(backbone, tok, torch.randn(5), LLMRecConfig())


@pytest.mark.slow
def test_smollm2_recommender_is_finite_and_prefix_sharing_is_exact():
    torch.manual_seed(0)
    table = torch.randn(N_ITEMS + 1, 128) * 0.1
    model = LLMRec.from_spec("smollm2", table, LLMRecConfig(n_layers=4, max_len=6)).eval()
    assert model.n_layers == 4 and len(model.decoder.layers) == 4
    assert count_params(model, trainable_only=True) == 4 * 3 * 16 * (576 + 1536) + (128 * 576 + 576) + 576 * 128
    inp = batch()["input"]
    shared = model.score_all(inp)
    assert torch.isfinite(shared[:, 1:]).all()
    model.cfg.share_prefix = False
    torch.testing.assert_close(shared, model.score_all(inp), rtol=1e-4, atol=1e-4)
    model.train()
    loss, _ = model(batch())
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------ item table option
def test_trainable_item_table_gets_gradients_and_is_saved_a_frozen_one_does_not():
    from slmrec_lib.models.llmrec import LLMRecConfig as Cfg

    assert Cfg().train_item_table is False  # the paper's frozen table by default
    for trainable in (False, True):
        model = make(train_item_table=trainable).train()
        loss, _ = model(batch())
        loss.backward()
        table = model.item_embeddings.weight
        assert table.requires_grad is trainable
        if trainable:
            assert table.grad is not None and table.grad[1:].abs().sum() > 0
        else:
            assert table.grad is None
        saved = {k for k, p in model.named_parameters() if p.requires_grad}  # what a run's model.pt keeps
        assert ("item_embeddings.weight" in saved) is trainable


def test_state_dicts_with_the_old_item_table_key_still_load():
    model = make()
    state = model.state_dict()
    old = {("item_emb.weight" if k == "item_embeddings.weight" else k): v for k, v in state.items()}
    old["item_emb.weight"] = old["item_emb.weight"] + 1.0
    fresh = make()
    fresh.load_state_dict(old, strict=True)
    torch.testing.assert_close(fresh.item_embeddings.weight, model.item_embeddings.weight + 1.0)


# ------------------------------------------------------------------------------ layer redundancy
def test_angular_distance_on_hand_built_vectors():
    from slmrec_lib.models.llmrec import angular_distance

    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0], [1.0, 1.0], [1.0, 3.0 ** 0.5]])
    expected = torch.tensor([0.0, 0.5, 1.0, 0.25, 1 / 3])  # 0, 90, 180, 45, 60 degrees
    torch.testing.assert_close(angular_distance(a, b), expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="differ"):
        angular_distance(a, b[:, :1])


def test_layer_angular_distances_tabulates_every_layer_and_shift():
    from slmrec_lib.models.llmrec import angular_distance, layer_angular_distances

    model = make(n_backbone_layers=3, instruction="History:\n")
    inp = batch(B=7)["input"]
    frame = layer_angular_distances(model, inp, max_shift=2, batch_size=3)
    assert list(frame[["layer", "shift"]].itertuples(index=False, name=None)) == [(0, 1), (1, 1), (2, 1), (0, 2), (1, 2)]
    assert frame.users.eq(7).all() and frame.normed.tolist() == [False, False, True, False, True]
    model.eval()
    with torch.no_grad():
        states = model.last_token_states(inp)
    for row in frame.itertuples():
        want = angular_distance(states[row.layer], states[row.layer + row.shift]).mean().item()
        assert abs(row.angular_distance - want) < 1e-5, row
    assert frame.angular_distance.between(0, 1).all() and frame.angular_distance.gt(0).all()
    with pytest.raises(ValueError, match="max_shift"):
        layer_angular_distances(model, inp, max_shift=4)


# ------------------------------------------------------------------------------ scoring speed paths
def test_only_the_scoring_batch_is_execution_only_and_fp32_merge_compile_are_real():
    from slmrec_lib.util import execution_fields

    # merged LoRA and torch.compile moved most users' ranks under bf16 on an H200 (results/gpu/scoring.csv)
    assert execution_fields(LLMRecConfig) == {"score_batch_size"}
    assert LLMRecConfig().score_fp32 is False  # the committed runs scored without it
    assert LLMRecConfig().merge_lora is False and LLMRecConfig().compile_scoring is False


def _trained_like(**cfg) -> LLMRec:
    model = make(n_backbone_layers=2, instruction="History:\n", lora_dropout=0.0, **cfg)
    with torch.no_grad():  # LoRA B starts at 0: give it weights so that merging has something to fold in
        g = torch.Generator().manual_seed(3)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def test_every_scoring_speed_path_ranks_exactly_as_the_plain_one():
    from slmrec_lib.data import leave_one_out, synthetic
    from slmrec_lib.evaluation import EvalProtocol, rank_positives

    split = leave_one_out(synthetic(n_users=50, n_items=N_ITEMS, seed=4, max_len=12))
    plain = _trained_like()
    paths = {"merge_lora": dict(merge_lora=True), "score_batch_size": dict(score_batch_size=7),
             "score_fp32": dict(score_fp32=True),
             "all": dict(merge_lora=True, score_batch_size=16, score_fp32=True, compile_scoring=True)}
    for protocol in (EvalProtocol(kind="full"), EvalProtocol(kind="sampled", n_negatives=20, seed=0)):
        want = rank_positives(plain, split, protocol, batch_size=20)
        scores = plain.score_all(torch.from_numpy(np.stack([np.arange(6) + 1] * 3)))
        for name, settings in paths.items():
            fast = _trained_like(**settings)
            got = rank_positives(fast, split, protocol, batch_size=20)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} under {protocol.name}")
            assert (fast._compiled is not None) == settings.get("compile_scoring", False)
            torch.testing.assert_close(fast.score_all(torch.from_numpy(np.stack([np.arange(6) + 1] * 3))), scores,
                                       rtol=1e-4, atol=1e-5, msg=name)


def test_merged_scoring_leaves_training_weights_bit_for_bit():
    model = _trained_like(merge_lora=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inp = batch()["input"]
    model.eval()
    model.score_all(inp)
    model.score_all(inp)
    assert model._merged_memo is not None
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    model.train()
    loss_merged_model, _ = model(batch())
    reference = _trained_like()
    loss_plain, _ = reference.train()(batch())
    assert torch.equal(loss_merged_model, loss_plain)  # training never sees merged weights
    with torch.no_grad():  # a LoRA update invalidates the merged copy
        next(p for n, p in model.named_parameters() if "lora_A" in n).add_(0.1)
    model.eval()
    model.score_all(inp)
    reference.load_state_dict(model.state_dict())
    torch.testing.assert_close(model.score_all(inp), reference.eval().score_all(inp), rtol=1e-5, atol=1e-5)
