"""The two-hop task: labels, the missing-model error, and (building twohop-llama once into $NTP_RL_CACHE if needed) its
acceptance properties (opt-in, NTP_RL_TWOHOP=1): noise and two-hop answers equally uncertain, one-hop answers known, the oracle thought helps
two-hop answers by >= 2 nats and leaves noise alone."""
import os, subprocess, sys
import pytest, torch
from ntp_rl.core import *
from ntp_rl.data import *

def test_labels_cover_every_type_and_agree_with_the_text():
    tok = twohop_tokenizer()
    docs = twohop_docs(50, seed=3)
    w = make_windows(tokenize_docs(tok, docs), 128, tok.pad_token_id, tok.eos_token_id, "split")
    lab = twohop_labels(w.input_ids, tok)
    counts = {t: int(lab.mask(t).sum()) for t in TWOHOP_TYPES}
    assert counts["table"] == 50*32 and counts["noise"] == 50*12 and counts["onehop"] == counts["twohop"] == 50*4
    for b, d in enumerate(docs):  # rebuild π from the text and check every labelled answer
        words = d.split(); pi = dict(zip(words[1:49:3], words[2:49:3]))
        for t in lab.mask("onehop")[b].nonzero()[:, 0].tolist(): assert words[t] == pi[words[t-1]]
        for t in lab.mask("twohop")[b].nonzero()[:, 0].tolist():
            assert words[t] == pi[pi[words[t-1]]] and tok.convert_ids_to_tokens(int(lab.intermediate[b, t])) == pi[words[t-1]]

def test_missing_model_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-c", "from ntp_rl.core import *; run_cli(load_model, 'twohop-llama')"],
                       capture_output=True, text=True, env=dict(os.environ, NTP_RL_CACHE=str(tmp_path)), timeout=120)
    assert r.returncode == 2 and "ntp_rl_prepare_twohop" in r.stderr and "Traceback" not in r.stderr, r.stderr

def test_induction_init_looks_one_hop_up_before_training(tmp_path):
    "The circuit written by induction_init answers one-hop queries at step 0 (random weights: log 16 or worse), and only one hop."
    from ntp_rl.twohop import TwohopModelConfig, init_twohop_model, position_nll, twohop_eval_windows
    model, tok = load_model(str(init_twohop_model(tmp_path/"m")), device="cpu", attn_implementation="eager")
    m = position_nll(model, tok, twohop_eval_windows(tok, n_docs=16)).groupby("type").nll.mean()
    assert m["onehop"] < 1.5 and m["twohop"] > 2.7, m
    att = model(**tok(twohop_docs(1, 5)[0], return_tensors="pt"), output_attentions=True).attentions[0][0, 0]  # (L, L) layer 1, head 0
    assert att.diagonal(-1).mean() > 0.9  # the previous-token head

def test_induction2_adds_a_head_two_tokens_back(tmp_path):
    "init='induction2' (twohop-multi's) keeps the one-hop circuit and makes layer 1's second head read the token 2 back; 'induction' is unchanged."
    from ntp_rl.twohop import TwohopModelConfig, init_twohop_model, position_nll, twohop_eval_windows
    cfg = TwohopModelConfig(corpus="twohop-multi-pretrain", init="induction2")
    model, tok = load_model(str(init_twohop_model(tmp_path/"m", cfg)), device="cpu", attn_implementation="eager")
    test = twohop_docs(1, 5, TWOHOP_MULTI)[0]
    att = model(**tok(test, return_tensors="pt"), output_attentions=True).attentions[0][0]  # (heads, L, L) layer 1
    assert att[0].diagonal(-1).mean() > 0.9 and att[1].diagonal(-2).mean() > 0.9, (att[0].diagonal(-1).mean(), att[1].diagonal(-2).mean())
    m = position_nll(model, tok, twohop_eval_windows(tok, n_docs=16, cfg=TWOHOP_MULTI)).groupby("type").nll.mean()
    # one hop at step 0 (the lookup finds π(c) and σ(c): the class is learned in pretraining), not two
    assert m["onehop"] < m["noise"] - 0.8 and min(m["twohop"], m["multihop"], m["multihop2"]) > m["onehop"] + 0.8, m
    plain, _ = load_model(str(init_twohop_model(tmp_path/"p", TwohopModelConfig(corpus="twohop-multi-pretrain"))), device="cpu",
                          attn_implementation="eager")
    att = plain(**tok(test, return_tensors="pt"), output_attentions=True).attentions[0][0]
    assert att[1].diagonal(-1).mean() > 0.9  # induction: both heads 1 back, as twohop-llama's

needs_model = pytest.mark.skipif(os.environ.get("NTP_RL_TWOHOP") != "1", reason="builds twohop-llama once (about 3 min "
    "of training) and checks the task's properties; set NTP_RL_TWOHOP=1")

@pytest.fixture(scope="module")
def built():
    from ntp_rl.twohop import prepare_twohop_model, twohop_eval_windows
    model, tok = load_model(str(prepare_twohop_model()), device="cpu")
    return model, tok, twohop_eval_windows(tok, n_docs=128)

@needs_model
def test_base_entropy_per_type(built):
    from ntp_rl.twohop import position_nll, type_summary
    model, tok, ew = built
    h = type_summary(position_nll(model, tok, ew), "entropy")["mean"]
    assert abs(h["noise"] - h["twohop"]) < 0.3, h
    assert h["onehop"] < 0.5, h

@needs_model
def test_oracle_thought(built):
    from ntp_rl.twohop import thought_nll
    model, tok, ew = built
    m = thought_nll(model, tok, ew).groupby("type")[["base", "thought"]].mean()
    assert m.loc["twohop", "base"] - m.loc["twohop", "thought"] >= 2.0, m
    assert abs(m.loc["noise", "base"] - m.loc["noise", "thought"]) < 0.05, m

def test_placements_at_equal_thought_tokens():
    import numpy as np, pandas as pd
    from ntp_rl.twohop import placement_mask, placement_row, placement_curve
    rng = np.random.default_rng(0)
    typ = np.array(["other"] * 60 + ["noise"] * 20 + ["onehop"] * 10 + ["twohop"] * 10)
    base = np.where(typ == "twohop", 3.0, np.where(typ == "onehop", 0.0, 2.0))
    df = pd.DataFrame(dict(window=np.arange(100) % 10, pos=np.arange(100), type=typ, base=base,
                           thought=np.where(typ == "twohop", 0.5, base + 0.3), entropy=np.where(typ == "onehop", 0.1, 2.7) + rng.random(100) * 0.1,
                           value=np.where(typ == "twohop", 0.8, -0.1) + rng.random(100) * 0.01))
    for m in ("learned", "oracle"):
        r = placement_row(df, placement_mask(df, m, 10), nll="thought", n_boot=100)
        assert r["frac_at_twohop"] == 1.0 and r["p_think_noise"] == 0.0 and abs(r["gain"] - 10 * 2.5 / 100) < 1e-9
        assert r["nll_lo"] <= r["nll"] <= r["nll_hi"] and abs(r["thought_tokens"] - 0.3) < 1e-9
    e = placement_row(df, placement_mask(df, "entropy", 10), nll="thought", n_boot=100)
    assert e["gain"] < 0.25  # entropy cannot tell two-hop answers from noise
    cur = placement_curve(df, (0.1, 0.2), nll="thought", n_boot=50)
    assert (cur.groupby("rate").thought_tokens.nunique() == 1).all() and len(cur) == 8

def test_oracle_values_learn_from_a_fresh_model(tmp_path):
    from ntp_rl.twohop import init_twohop_model, twohop_eval_windows, fit_oracle_values
    m, tok = load_model(str(init_twohop_model(tmp_path/"m")), device="cpu")
    v = fit_oracle_values(m, tok, twohop_eval_windows(tok, 4), steps=3)
    assert v.out.weight.abs().sum() > 0  # the estimates start at zero; the regression moved them

@pytest.fixture(scope="module")
def fair():
    from ntp_rl.twohop import prepare_twohop_model, twohop_eval_windows
    model, tok = load_model(str(prepare_twohop_model(name="twohop-fair")), device="cpu")
    return model, tok, twohop_eval_windows(tok, n_docs=128)

@needs_model
def test_fair_build_preconditions(fair):
    "The discovery build reads a thought it is given (oracle ≥ 2 nats at two-hop answers), does not write one (sampled thoughts hold "
    "π(c) at chance, ≤ 2/16), and ignores thoughts in noise (< 0.05 nats)."
    from ntp_rl.twohop import thought_nll
    model, tok, ew = fair
    o = thought_nll(model, tok, ew, "oracle").groupby("type")[["base", "thought"]].mean()
    assert o.loc["twohop", "base"] - o.loc["twohop", "thought"] >= 2.0, o
    assert abs(o.loc["noise", "base"] - o.loc["noise", "thought"]) < 0.05, o
    s = thought_nll(model, tok, ew, "sampled", seed=1)
    two = s[s.type == "twohop"]
    assert (two.thought_token == two.intermediate).mean() <= 2 / 16, (two.thought_token == two.intermediate).mean()
    assert abs(s[s.type == "noise"].thought.mean() - o.loc["noise", "base"]) < 0.05

@needs_model
def test_small_task_starts_unable_and_gets_a_learning_signal():
    "twohop-small (experiments/fast_quietstar's learnable internalization test): from twohop-fair-deep the two-hop answers start near "
    "chance (ln 5) while one-hop answers are known and the oracle thought answers them; one plain next-token backward reaches the new layers."
    import math
    from ntp_rl.twohop import prepare_twohop_model, twohop_eval_windows, position_nll, thought_nll
    model, tok = load_model(str(prepare_twohop_model(name="twohop-fair-deep")), device="cpu")
    ew = twohop_eval_windows(tok, n_docs=128, window=40, cfg=TWOHOP_SMALL)
    m = position_nll(model, tok, ew).groupby("type").nll.mean()
    assert abs(m["twohop"] - math.log(5)) < 0.2 and m["twohop"] > twohop_shortcut_bar(TWOHOP_SMALL) + 0.5, m
    assert m["onehop"] < 0.1, m
    o = thought_nll(model, tok, ew, "oracle", types=("twohop",)).groupby("type")[["base", "thought"]].mean()
    assert o.loc["twohop", "base"] - o.loc["twohop", "thought"] >= 1.0, o  # a thought holding π(c) makes the answer known
    model.train()
    ids, am = ew.input_ids[:8], ew.attention_mask[:8]
    model(input_ids=ids, attention_mask=am, labels=ids.masked_fill(am == 0, -100)).loss.backward()
    g = [float(model.model.layers[k].self_attn.o_proj.weight.grad.abs().sum()) for k in (2, 3)]
    assert all(x > 0 for x in g), g  # the new layers, an identity at the start, get a gradient at once
