"ntp_rl.eval on the real default model: difficulty buckets order the loss, answer probability beats a random model."
import pytest, torch
from ntp_rl.core import load_model, tiny_model, DataConfig
from ntp_rl.data import load_windows
from ntp_rl.eval import *

@pytest.fixture(scope="module")
def smol():
    return load_model("smollm2-135m", device="cpu")

def test_buckets_order_the_loss(smol):
    model, tok = smol
    ws = load_windows(DataConfig("wiki", window=64, n_docs=200), tok)["test"][:2]
    tab = bucket_table(token_scores(model, ws, batch_size=2))
    assert list(tab.tokens) == sorted(tab.tokens, reverse=True) and tab.loc["hard", "tokens"] > 10
    # hard tokens (base entropy > 1.5 nats) have higher loss and lower accuracy than tokens overall
    assert tab.loc["hard", "ppl"] > tab.loc["all", "ppl"] and tab.loc["hard", "acc"] < tab.loc["all", "acc"], tab
    # the same model as its own base, passed explicitly, gives the same table
    tab2 = bucket_table(token_scores(model, ws, base=model, batch_size=2))
    assert (tab2.tokens == tab.tokens).all() and abs(tab2.loc["all", "nll"] - tab.loc["all", "nll"]) < 1e-5

def test_answer_probability_real_vs_random(smol):
    model, tok = smol
    probs = gsm_eval_problems(DataConfig("gsm", n_docs=200))[:6]
    tiny, _ = tiny_model("llama")
    assert answer_probability(model, tok, probs) > 3 * answer_probability(tiny, tok, probs)
