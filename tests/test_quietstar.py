"""Quiet-STaR and distill objectives through the real trainer: exact resume, two processes, curriculum CLI, bad configs."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
from ntp_rl.cli import ntp_rl_train
from ntp_rl.trainer import checkpoints, read_metrics

from trainutil import ROOT, SCRIPT, run, losses, launch_two, assert_resume_exact
QS = ["objective=quietstar", "objective_args.thought.thought_len=4", "objective_args.thought.n_ahead=2", "objective_args.thought.n_thoughts=2",
      "objective_args.n_positions=6", "model.name_or_path=tiny-llama", "model.device=cpu", "data.corpus=verne",
      "data.window=24", "data.batch_size=2", "lr=1e-3", "warmup_steps=0"]



def test_quietstar_resume_is_exact(tmp_path):
    a = assert_resume_exact(tmp_path, QS)  # constant_with_warmup: max_steps does not change the lr
    rows = [r for r in read_metrics(a) if "loss" in r]
    for k in ("nll_base", "nll_mixed", "policy", "reward_mean", "reward_std", "advantage", "mix_weight", "thought_entropy",
              "tokens_per_s", "peak_mem_mb"):
        assert k in rows[-1], k

def test_quietstar_two_processes(tmp_path):
    launch_two(tmp_path, *QS, "max_steps=2", f"out_dir={tmp_path/'two'}")
    assert sorted(losses(tmp_path/"two")) == [1, 2]
    assert (checkpoints(tmp_path/"two")[-1]/"model"/"mixing_head.safetensors").exists()

def test_bad_quietstar_configs(tmp_path, capsys):
    for args, msg in [(["objective_args.thought.thought_len=1"], "at least 2"), (["objective_args.thought.n_ahead=0"], "at least 1 future token"),
                      (["objective_args.T=4"], "not fields of QuietStarConfig")]:
        with pytest.raises(SystemExit) as e: ntp_rl_train([*QS, *args, f"out_dir={tmp_path/'x'}"])  # in-process: the CLI's own error path
        err = capsys.readouterr().err
        assert e.value.code == 2 and msg in err and err.count("\n") == 1 and "Traceback" not in err, err[-2000:]
    assert not (tmp_path/"x").exists()

def test_curriculum_cli_runs_every_stage(tmp_path):
    cfg = tmp_path/"cur.yaml"
    cfg.write_text(f"""
curriculum:
  out_dir: {tmp_path/'cur'}
  base: {{model: {{name_or_path: tiny-llama, device: cpu}}, data: {{corpus: verne, window: 16, batch_size: 2}},
          lr: 0.001, warmup_steps: 0, max_steps: 1}}
  stages:
    - {{name: think, objective: quietstar, objective_args: {{thought: {{thought_len: 3, n_ahead: 2, n_thoughts: 2}}, n_positions: 4}}}}
    - {{name: ntp, objective: distill}}
""")
    r = run([sys.executable, "-c", "from ntp_rl.cli import ntp_rl_curriculum; ntp_rl_curriculum()", "--config", str(cfg)])
    stages = [json.loads(l)["stage"] for l in r.stdout.strip().splitlines()]
    assert stages == ["think", "ntp"]
    assert sorted(p.name for p in (tmp_path/"cur").iterdir()) == ["0_think", "1_ntp"]


# ---- the learning signal (issue 11): alive at step 0, and it learns where a thought is informative ----
import math as _math
import torch
from ntp_rl.core import ModelConfig, DataConfig, tiny_model, seed_everything
from ntp_rl.thoughts import new_mixing_head, mix_logits
from ntp_rl.quietstar import QuietStarConfig, QuietStarObjective, advantages
from ntp_rl.trainer import TrainConfig, Trainer


def _qs_cfg(tmp_path, **kw):
    args = dict(thought=dict(thought_len=4, n_ahead=2, n_thoughts=2), n_positions=6) | kw.pop("objective_args", {})
    kw = dict(max_steps=1, lr=1e-4, warmup_steps=0, save_every=1) | kw
    return TrainConfig(objective="quietstar", objective_args=args, model=ModelConfig("tiny-llama", device="cpu"),
                       data=DataConfig("verne", window=24, batch_size=2), out_dir=str(tmp_path), **kw)


def test_perfect_thought_opens_the_mixing_head():
    """A thought-conditioned prediction that knows the target (the post-thought state is the target's embedding):
    within 100 Adam steps at the trainer's default objective lr, the head learns to trust it (w > 0.5) and the mixed
    NLL falls more than 1 nat below the base NLL. A gated or zero-gradient head could not move in time."""
    seed_everything(0)
    model, tok = tiny_model("llama")
    ids = tok(["The year 2889 was a year of wonders, and the city hummed with machines."], return_tensors="pt").input_ids
    with torch.no_grad():
        hb = model.model(ids).last_hidden_state[0, :-1]  # (P, D) real base states
    y = ids[0, 1:]  # (P,) targets
    E = model.get_output_embeddings().weight.detach()
    hp = 20 * E[y] / (E[y] ** 2).sum(-1, keepdim=True) + 0.1 * torch.randn_like(hb)  # logit 20 on the target: informative
    lm_head = model.get_output_embeddings()
    with torch.no_grad():
        lb, lt = lm_head(hb).float(), lm_head(hp).float()
    nll = lambda logits: -torch.log_softmax(logits, -1).gather(-1, y[:, None]).mean()
    assert nll(lt) < nll(lb) - 2  # the thought really is informative
    head = new_mixing_head(model)
    opt = torch.optim.AdamW(head.parameters(), lr=TrainConfig().objective_lr, weight_decay=0.001)
    for _ in range(100):
        loss = nll(mix_logits(lb, lt, head(hb, hp)))
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        w = head(hb, hp)
        mixed = nll(mix_logits(lb, lt, w))
    assert w.mean() > 0.5, float(w.mean())
    assert mixed < nll(lb) - 1, (float(mixed), float(nll(lb)))


def _start_row_step(tmp_path, scale):
    seed_everything(0)
    tr = Trainer(_qs_cfg(tmp_path/f"s{scale}", objective_args=dict(marker_lr_scale=scale)))
    me = tr.acc.unwrap_model(tr.module).objective.markers
    w0 = me.weight.detach().clone()
    tr.train_step()
    return (me.weight.detach() - w0)[0].norm().item()


def test_marker_learning_rate_multiplier_is_real(tmp_path):
    "One trainer step with marker_lr_scale=100 moves the START row ≈ 100× as far as with 1 (Adam ignores gradient scale)."
    ratio = _start_row_step(tmp_path, 100.0) / _start_row_step(tmp_path, 1.0)
    assert 80 < ratio < 120, ratio


def test_lora_keeps_markers_trainable(tmp_path):
    "Under LoRA the markers and the adapters change; every other base weight is unchanged."
    seed_everything(0)
    tr = Trainer(_qs_cfg(tmp_path, lora_r=4, max_steps=2, lr=1e-2))
    m = tr.acc.unwrap_model(tr.module)
    before = {n: p.detach().clone() for n, p in m.lm.named_parameters()}
    mk0 = m.objective.markers.weight.detach().clone()
    tr.train_step(); tr.train_step()
    changed = {n for n, p in m.lm.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and all("lora_" in n for n in changed), sorted(changed)[:5]
    assert not torch.equal(mk0, m.objective.markers.weight.detach())
    # the saved thinking model carries the learned markers
    path = tr.save()
    from ntp_rl.thoughts import load_thinking_model
    th = load_thinking_model(path/"model", device="cpu")
    torch.testing.assert_close(th.model.get_input_embeddings().weight[th.marks.ids], m.objective.markers.weight.detach())


def test_one_thought_per_position_uses_a_running_baseline():
    "K = 1: the advantage is reward − running mean (not identically 0), and a bare call without a baseline is refused."
    seed_everything(0)
    model, tok = tiny_model("llama")
    obj = QuietStarObjective(QuietStarConfig(thought=dict(thought_len=4, n_ahead=2, n_thoughts=1)), tok)
    model = obj.prepare_model(model.train())
    enc = tok(["The year 2889 was a year of wonders.", "Two plus two is four, said the machine."], return_tensors="pt", padding=True)
    batch = dict(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
    parts = [obj.loss(model, batch, obj.rollout(model, batch))[1] for _ in range(2)]
    assert all(float(p["advantage"]) > 0 for p in parts) and parts[1]["policy"].item() != 0
    assert float(obj.reward_ema[1]) > 1  # two updates of the decayed count
    with pytest.raises(Exception, match="n_thoughts >= 2"):
        advantages(torch.zeros(1, 1, 3))


def test_pause_control_writes_the_filler(tmp_path):
    "thought_source='filler': every thought is START, the filler token repeated, END; no REINFORCE."
    seed_everything(0)
    tr = Trainer(_qs_cfg(tmp_path, objective_args=dict(thought_source="filler", thought=dict(thought_len=4, n_ahead=2, n_thoughts=1))))
    obj = tr.acc.unwrap_model(tr.module).objective
    b = next(tr.stream)
    ro = obj.rollout(tr.acc.unwrap_model(tr.module).lm, b)
    t = ro["tokens"]
    assert (t[..., 0] == obj.marks.start).all() and (t[..., -1] == obj.marks.end).all() and (t[..., 1:-1] == obj.filler).all()
    m = tr.train_step()
    assert m["policy"] == 0 and _math.isfinite(m["loss"])


def test_collapse_warning_fires_on_a_constant_thought(tmp_path, capsys):
    "One allowed thought token: every position writes the same thought (top_thought_share = 1); where it buys nothing, the trainer says so in one line, once."
    from ntp_rl.core import ModelConfig, DataConfig
    from ntp_rl.trainer import TrainConfig, train
    cfg = TrainConfig(objective="quietstar", objective_args=dict(thought=dict(thought_len=3, n_ahead=1, n_thoughts=2, thought_vocab="the")),
                      model=ModelConfig("tiny-llama", device="cpu"), data=DataConfig("verne", window=24, batch_size=2),
                      out_dir=str(tmp_path/"c"), max_steps=3, lr=1e-3, warmup_steps=0, save_every=3, seed=0)
    train(cfg)
    err = capsys.readouterr().err
    rows = [r for r in read_metrics(tmp_path/"c") if "top_thought_share" in r]
    assert rows and all(r["top_thought_share"] == 1.0 for r in rows)
    assert rows[0]["reward_mean"] <= 0  # the constant thought buys nothing on this tiny model ...
    assert err.count("thoughts collapsed") == 1 and f"collapsed at step {rows[0]['step']}" in err, err[-1500:]  # ... and the run says so once


def test_comparison_arms_share_the_next_token_term():
    "Every arm of the thinking comparison (experiments/quietstar) trains the same full-window next-token NLL at weight 1: same value, same gradient on the LM, and the thinking arms' loss is exactly its weighted parts."
    from ntp_rl.quietstar import comparison_arms
    from ntp_rl.objective import get_objective
    from ntp_rl.data import make_windows
    def arm(name, args):
        seed_everything(0)
        model, tok = tiny_model("llama")
        cls = get_objective(name)
        obj = cls(cls.Config(**args), tok)
        lm = obj.prepare_model(model.train())
        ws = make_windows([tok("Captain Nemo steered the Nautilus twenty thousand leagues under the sea, past the coral.").input_ids],
                          window=20, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id, boundaries="split")
        batch = dict(input_ids=ws.input_ids, attention_mask=ws.attention_mask)
        loss, parts = obj.loss(lm, batch, obj.rollout(lm, batch))
        text = parts["nll_base"] if name == "quietstar" else parts["nll"]
        w = lm.model.layers[0].mlp.up_proj.weight
        (g,) = torch.autograd.grad(text, w, retain_graph=True)  # the next-token term's own gradient on the LM
        return obj, loss, parts, text, g
    arms = {a: arm(*spec) for a, spec in comparison_arms(thought=dict(thought_len=4, n_ahead=2, n_thoughts=2), n_positions=6).items()}
    _, ntp_loss, _, ntp_text, ntp_grad = arms["ntp"]
    assert torch.equal(ntp_loss, ntp_text)  # the ntp arm trains only this term
    for a in ("quietstar", "pause"):
        obj, loss, parts, text, g = arms[a]
        c = obj.cfg
        assert c.base_weight == 1.0
        assert torch.allclose(text, ntp_text, atol=1e-5), (a, float(text), float(ntp_text))
        assert torch.allclose(g, ntp_grad, atol=1e-6), a  # the same term, not just the same number
        total = c.base_weight * parts["nll_base"] + c.mixed_weight * parts["nll_mixed"] + c.thought_weight * parts["nll_thought"] + c.policy_weight * parts["policy"]
        assert torch.allclose(loss, total, atol=1e-6), a  # nothing else enters the loss
    assert arms["pause"][0].cfg.thought_source == "filler" and arms["quietstar"][0].cfg.thought_source == "sampled"
