"""Fast Quiet-STaR (issue 23): the thinking-removed stage leaves a model that writes no thought tokens at inference and
generates exactly as a plain model does (no markers, no mixing head call)."""
from pathlib import Path
import pytest
import torch
from ntp_rl.core import load_model
from ntp_rl.thoughts import (MixingHead, START_THOUGHT, END_THOUGHT, is_thinking_model, load_thinking_model, generate_plain,
                             generate_with_thoughts)
from ntp_rl.trainer import CurriculumConfig, run_curriculum, read_metrics

PROMPT = "The captain looked at the sea and"

@pytest.fixture(scope="module")
def stages(tmp_path_factory) -> tuple[Path, Path]:
    "A two-stage curriculum on tiny-llama: thinking (Quiet-STaR), then removed (distill); the model folder of each."
    d = tmp_path_factory.mktemp("fast_quietstar")
    cur = CurriculumConfig(base=dict(model=dict(name_or_path="tiny-llama", device="cpu"), data=dict(corpus="verne", window=16, batch_size=2),
                                     lr=1e-3, warmup_steps=0, max_steps=2, save_every=2),
                           stages=[dict(name="think", objective="quietstar", objective_args=dict(thought_len=4, n_ahead=2, n_thoughts=2, n_positions=4)),
                                   dict(name="removed", objective="distill")],
                           out_dir=str(d/"cur"))
    think, removed = (Path(r["checkpoint"])/"model" for r in run_curriculum(cur))
    return think, removed

@pytest.fixture
def head_calls(monkeypatch) -> list:
    "Every call of any mixing head's forward, recorded."
    calls, forward = [], MixingHead.forward
    def counted(self, *a, **k):
        calls.append(1); return forward(self, *a, **k)
    monkeypatch.setattr(MixingHead, "forward", counted)
    return calls

@torch.no_grad()
def greedy_reference(model, tok, prompt:str, n:int) -> list[int]:
    "The plain model's path, written out: full recomputation with a plain forward, greedy, thought markers excluded."
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    marks = [tok.convert_tokens_to_ids(m) for m in (START_THOUGHT, END_THOUGHT)]
    out = []
    for _ in range(n):
        logits = model(input_ids=ids).logits[0, -1].float()  # (V,)
        logits[marks] = float("-inf")
        x = int(logits.argmax()); out.append(x)
        if x == tok.eos_token_id: break
        ids = torch.cat([ids, torch.tensor([[x]])], 1)
    return out

def test_removed_stage_is_a_plain_model(stages, head_calls):
    think, removed = stages
    assert is_thinking_model(think) and not is_thinking_model(removed)  # no thought config, no mixing head saved
    assert not (removed/"mixing_head.safetensors").exists()
    model, tok = load_model(str(removed), device="cpu")
    assert START_THOUGHT in tok.get_vocab()  # the markers are in its vocabulary (inherited), so excluding them is a real check
    g = generate_plain(model, tok, PROMPT, 12)
    assert head_calls == [], "generating with the removed model called a mixing head"
    assert g.budgets == [0] * len(g.token_ids) and g.thought_tokens_per_token == 0
    assert all(t == [] for t in g.thought_ids) and all(w == 0.0 for w in g.weights)
    marks = {tok.convert_tokens_to_ids(m) for m in (START_THOUGHT, END_THOUGHT)}
    assert not marks & set(g.token_ids), "a thought marker was emitted"
    assert g.token_ids == greedy_reference(model, tok, PROMPT, 12)  # the plain model's generation path, token for token

def test_removed_stage_trained_and_the_checks_can_fail(stages, head_calls):
    "Positive controls: the thinking stage's model does call its head and write thoughts, and the removed stage moved the weights."
    think, removed = stages
    th = load_thinking_model(think, device="cpu")
    g = generate_with_thoughts(th.model, th.tok, PROMPT, th.cfg, 6, th.head)
    assert len(head_calls) > 0 and g.thought_tokens_per_token == th.cfg.thought_len
    assert any(t for t in g.thought_ids)
    model, _ = load_model(str(removed), device="cpu")
    a, b = th.model.state_dict(), model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in b if k in a), "the removed stage did not train"
    rows = [r for r in read_metrics(removed.parents[1]) if "loss" in r]
    assert rows and "kl" in rows[-1] and rows[-1]["token_forwards"] > 2 * (2 * 16)  # a distill stage: the student's 32 positions and its teacher's (text and thoughts) counted
