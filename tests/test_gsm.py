"""GSM-style text (issue 22): the equations placement and its supervised thought have a learning signal at step 0."""
import pytest
import torch
from ntp_rl.core import tiny_model, seed_everything
from ntp_rl.data import equation_labels, make_windows
from ntp_rl.quietstar import QuietStarConfig, QuietStarObjective

SOLUTION = ("He was left with 72*0.5=36 pebbles.\nHe got back to 36+17=53 pebbles.\nThen 53-9=44 pebbles.\n#### 44")
VOCAB = "0.1,23456789 "  # digits, point, comma, space: one token each in SmolLM2's tokenizer


def _fresh(est):
    seed_everything(0)
    m, tok = tiny_model("llama")  # SmolLM2's tokenizer: one digit per token
    obj = QuietStarObjective(QuietStarConfig(thought=dict(thought_len=5, n_ahead=2, n_thoughts=2, thought_vocab=VOCAB), placement="equations",
                                             estimator=est, filler_text=" ", thought_weight=0.5), tok)
    m = obj.prepare_model(m.train())
    ws = make_windows([tok(SOLUTION).input_ids] * 2, window=64, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id, boundaries="split")
    return m, tok, obj, dict(input_ids=ws.input_ids, attention_mask=ws.attention_mask)


@pytest.mark.parametrize("est", ["reinforce", "supervised"])
def test_equations_placement_has_a_learning_signal(est):
    "A fresh objective thinking before each written result: one backward reaches the markers, and the estimator's term alone reaches the LM (the writer)."
    m, tok, obj, b = _fresh(est)
    ro = obj.rollout(m, b)
    ids = b["input_ids"]
    got = [tok.decode(ids[r, p + 1]) for r in range(len(ids)) for p, ok in zip(ro["positions"][r], ro["real"][r]) if ok]
    assert got[:3] == ["3", "5", "4"], got  # the slot before each result's first digit (the second window is cut: fewer)
    if est == "supervised":  # the true thought: the result's digits, padded with the space
        assert tok.decode(ro["tokens"][0, 0, 1, 1:-1]) == "53 "
    loss, parts = obj.loss(m, b, ro)
    assert torch.isfinite(loss)
    loss.backward(retain_graph=True)
    assert obj.markers.weight.grad[0].norm() > 0  # START
    for n, p in obj.head.named_parameters(): assert p.grad.abs().sum() > 0, n
    w = m.model.layers[0].self_attn.q_proj.weight
    m.zero_grad()
    parts["policy"].backward(inputs=[w])
    assert w.grad is not None and w.grad.norm() > 0  # the writer learns through the estimator's term
    if est == "reinforce": assert parts["reward_std"] > 0  # the K thoughts of a slot are told apart


def test_equation_labels_in_packed_windows():
    "Labels come from the ids alone: two problems packed with EOS between them are labelled as each alone; no equation spans the EOS."
    _, tok = tiny_model("llama")
    a = tok(SOLUTION).input_ids
    lone = equation_labels(torch.tensor(a), tok)
    packed = equation_labels(torch.tensor(a + [tok.eos_token_id] + a), tok)
    assert torch.equal(packed.types[:len(a)], lone.types) and torch.equal(packed.types[len(a) + 1:], lone.types)
    assert int(packed.equation.max()) == 5 and int(packed.result.sum()) == 2 * int(lone.result.sum())
    bad = equation_labels(torch.tensor(tok("x =").input_ids + [tok.eos_token_id] + tok("5 apples").input_ids), tok)
    assert int(bad.result.sum()) == 0
