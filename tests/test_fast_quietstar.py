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
                           stages=[dict(name="think", objective="quietstar", objective_args=dict(thought=dict(thought_len=4, n_ahead=2, n_thoughts=2), n_positions=4)),
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

def test_placed_removal_stage(tmp_path):
    "A removed stage after thinking trained only at two-hop answers (DistillConfig.placement='twohop'): the teacher is matched "
    "only at those slots, the student trains on every next token, and what is left is a plain model."
    from ntp_rl.data import TWOHOP_SYMBOLS, DataConfig, load_windows, twohop_labels, twohop_anchors
    from ntp_rl.twohop import TwohopModelConfig, build_twohop_model
    from ntp_rl.quietstar import DistillConfig, DistillObjective, position_mask
    micro = build_twohop_model(tmp_path/"micro", TwohopModelConfig(corpus="twohop-pretrain-fair", max_steps=5, n_docs=200, batch_size=4))
    data = dict(corpus="twohop", window=128, boundaries="split", n_docs=200, batch_size=2)
    think = dict(thought=dict(thought_len=3, n_ahead=1, n_thoughts=1, thought_vocab=" ".join(TWOHOP_SYMBOLS[:16])),
                 estimator="supervised", placement="twohop")
    cur = CurriculumConfig(base=dict(model=dict(name_or_path=str(micro), device="cpu"), data=data, lr=1e-3, warmup_steps=0,
                                     max_steps=2, save_every=2),
                           stages=[dict(name="think", objective="quietstar", objective_args=think),
                                   dict(name="removed", objective="distill", objective_args=dict(placement="twohop", nll_weight=1.0))],
                           out_dir=str(tmp_path/"cur"))
    res = run_curriculum(cur)
    rows = [r for r in read_metrics(Path(res[-1]["checkpoint"]).parent) if "loss" in r]
    assert rows and all(r["kl"] > 0 and r["nll"] > 0 for r in rows)
    assert not is_thinking_model(Path(res[-1]["checkpoint"])/"model")
    model, tok = load_model(str(micro), device="cpu")
    obj = DistillObjective(DistillConfig(teacher=str(Path(res[0]["checkpoint"])/"model"), placement="twohop"), tok)
    model = obj.prepare_model(model)
    ws = load_windows(DataConfig(**data), tok)["val"]
    batch = dict(input_ids=ws.input_ids[:2], attention_mask=ws.attention_mask[:2])
    r = obj.rollout(model, batch)
    pos, real = twohop_anchors(twohop_labels(batch["input_ids"], tok), ("twohop",))
    assert real.any() and torch.equal(r["match"], position_mask(pos, real, batch["input_ids"].shape[1]))  # the two-hop answer slots
    # an independent reference of the loss: the KL taken on the gathered slots alone, the NLL over every next token
    from ntp_rl.objective import next_token_loss
    loss, parts = obj.loss(model, batch, r)
    marks = torch.tensor(obj.marks.ids)
    logits = model(**batch).logits.float().index_fill(-1, marks, float("-inf"))  # (B, L, V)
    idx = pos[..., None].expand(-1, -1, logits.shape[-1])
    s_lp, t_lp = logits.gather(1, idx).log_softmax(-1), r["teacher"].gather(1, idx)  # (B, P, V)
    ok = real & batch["attention_mask"].gather(1, pos + 1).bool()
    kl = (t_lp.exp() * (t_lp - s_lp).nan_to_num(0.0, posinf=0.0, neginf=0.0)).sum(-1)[ok].mean()
    torch.testing.assert_close(parts["kl"], kl, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(parts["nll"], next_token_loss(logits, batch["input_ids"], batch["attention_mask"]), rtol=1e-5, atol=1e-5)
