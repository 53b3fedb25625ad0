"""Entropy pipeline: exact statistics, padding invariance, bf16, the ntp_rl_entropy command, resume after SIGKILL, bad inputs."""
import json, math, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from ntp_rl.core import NtpRlError, tiny_model, default_tokenizer
from ntp_rl.data import iter_batches, load_corpus, tokenize_docs
from ntp_rl.entropy import (EntropyConfig, batch_stats, compute_entropies, doc_windows, load_entropies, next_token_stats,
                            run_entropy, window_table, COLUMNS)

BIN = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg")

@pytest.fixture(scope="module")
def tok(): return default_tokenizer()

def _wins(tok, texts, window=24, boundaries="split"):
    return doc_windows(tokenize_docs(tok, texts), window, tok.pad_token_id, tok.eos_token_id, boundaries)

TEXTS = ["The cat sat on the mat.", "2 + 2 = 4, and 3 * 7 = 21.", "A much longer sentence that forces padding on the "
         "others, with some extra words to go past one window of tokens for sure."]

@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_matches_direct_softmax(tok, arch):
    model, _ = tiny_model(arch, tokenizer=tok)
    wins, _ = _wins(tok, TEXTS)
    b = next(iter_batches(wins, batch_size=len(wins)))
    st = batch_stats(model, b, top_k=5)
    with torch.no_grad(): logits = model(**b).logits.double()  # (B, L, V)
    lp = torch.log_softmax(logits, -1)
    H, S, R = [], [], []
    mask = b["attention_mask"]
    for i in range(len(wins)):
        for t in range(mask.shape[1]):
            if not mask[i, t]: continue
            if t == 0: H.append(np.nan); S.append(np.nan); R.append(0); continue
            l = lp[i, t - 1]; y = b["input_ids"][i, t]
            H.append(float(-(l.exp() * l).sum())); S.append(float(-l[y])); R.append(int((l > l[y]).sum()) + 1)
    np.testing.assert_allclose(st["entropy"], H, atol=1e-5, equal_nan=True)
    np.testing.assert_allclose(st["surprisal"], S, atol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(st["rank"], R)
    assert st["entropy"].dtype == np.float32

def test_exact_on_smollm2(tok):
    """The real default model (logits up to ±40 over a 49k vocabulary), fp32, against a float64 direct computation: the
    entropy of every position of two GSM-style and two wiki windows agrees to 1e-5 nats (a fp32 dot product is ~5e-3 off)."""
    from ntp_rl.core import load_model
    from ntp_rl.data import DataConfig, load_windows
    model, tok = load_model("smollm2-135m", dtype="float32", device="cpu")
    wins = [load_windows(DataConfig(c, window=96, n_docs=40), tok)["test"][:2] for c in ("gsm", "wiki")]
    for w in wins:
        b = next(iter_batches(w, batch_size=2))
        st = batch_stats(model, b, top_k=5)
        with torch.no_grad(): logits = model(**b).logits  # (B, L, V) fp32
        assert logits.abs().max() > 20  # the regime where the naive formula fails
        real = b["attention_mask"].bool().clone(); real[:, 0] = False
        lp = torch.log_softmax(logits[:, :-1].double(), -1)  # (B, L-1, V)
        H = -(lp.exp() * lp).sum(-1)  # (B, L-1)
        S = -lp.gather(-1, b["input_ids"][:, 1:, None]).squeeze(-1)
        keep = real[b["attention_mask"].bool()].numpy()  # rows with a prediction, in batch_stats' order
        ref_h = H[real[:, 1:]].numpy()
        assert keep.sum() == len(ref_h) > 100
        np.testing.assert_allclose(st["entropy"][keep], ref_h, atol=1e-5, rtol=0)
        np.testing.assert_allclose(st["surprisal"][keep], S[real[:, 1:]].numpy(), atol=1e-5, rtol=0)

def test_uniform_and_onehot():
    V = 4096
    st = next_token_stats(torch.zeros(3, V), torch.tensor([0, 1, 2]))
    np.testing.assert_allclose(st["entropy"].numpy(), math.log(V), atol=1e-5)
    np.testing.assert_allclose(st["surprisal"].numpy(), math.log(V), atol=1e-5)
    oh = torch.full((2, V), -1e4); oh[0, 7] = 0; oh[1, 9] = 0
    st = next_token_stats(oh, torch.tensor([7, 8]))
    np.testing.assert_array_equal(st["entropy"].numpy(), [0, 0])
    assert st["rank"].tolist() == [1, 2] and st["topk_ids"][:, 0].tolist() == [7, 9]
    assert math.log(2) == pytest.approx(next_token_stats(torch.tensor([[0., 0., -1e4]]), torch.tensor([0]))["entropy"].item())

@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_batch_and_padding_invariance(tok, arch):
    model, _ = tiny_model(arch, tokenizer=tok)
    wins, _ = _wins(tok, TEXTS)
    together = batch_stats(model, next(iter_batches(wins, batch_size=len(wins))))
    alone = [batch_stats(model, next(iter_batches(wins[i:i+1], batch_size=1))) for i in range(len(wins))]
    for k in ("entropy", "surprisal", "topk_probs"):
        np.testing.assert_allclose(together[k], np.concatenate([a[k] for a in alone]), atol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(together["rank"], np.concatenate([a["rank"] for a in alone]))
    # extra right padding (a wider batch) changes nothing either
    b = next(iter_batches(wins, batch_size=len(wins)))
    pad = {k: torch.nn.functional.pad(v, (0, 7), value=tok.pad_token_id if k == "input_ids" else 0) for k, v in b.items()}
    np.testing.assert_allclose(batch_stats(model, pad)["entropy"], together["entropy"], atol=1e-5, equal_nan=True)

def test_bf16_model_gives_fp32_stats(tok):
    model, _ = tiny_model("llama", tokenizer=tok)
    model = model.to(torch.bfloat16)
    wins, _ = _wins(tok, TEXTS[:2])
    b = next(iter_batches(wins, batch_size=2))
    st = batch_stats(model, b)
    assert st["entropy"].dtype == np.float32 and np.isfinite(st["entropy"][st["has_pred"]]).all()
    with torch.no_grad(): lg = model(**b).logits  # bf16
    ref = next_token_stats(lg[0, :-1].float(), b["input_ids"][0, 1:])["entropy"].numpy()
    n0 = int(b["attention_mask"][0].sum())
    np.testing.assert_allclose(st["entropy"][1:n0], ref[:n0 - 1], atol=1e-5)

def test_rows_and_token_text_roundtrip(tok, tmp_path):
    texts = ["Tōkyō 日本 😀 costs 12.5 €\n\n  indented", "plain text here"]
    model, _ = tiny_model("gpt2", tokenizer=tok)
    wins, docs = _wins(tok, texts, window=8, boundaries="pack")
    compute_entropies(model, tok, wins, tmp_path, docs, top_k=3, batch_size=2, shard_windows=2, progress=False)
    df = load_entropies(tmp_path)
    assert list(df.columns) == list(COLUMNS) and len(df) == wins.n_tokens
    joined = "".join(df.sort_values(["window", "pos"])["token"])
    assert joined == tok.decode(wins.input_ids[wins.attention_mask.bool()].tolist())
    assert texts[0] in joined
    first = df[df["pos"] == 0]
    assert first["entropy"].isna().all() and (first["rank"] == 0).all() and all(len(x) == 0 for x in first["topk_ids"])
    rest = df[df["pos"] > 0]
    assert all(len(x) == 3 for x in rest["topk_ids"]) and (rest["rank"] >= 1).all()
    assert set(df["doc"]) == {0, 1}
    wt = window_table(tmp_path)
    assert len(wt) == len(wins) and wt["n_tokens"].sum() == wins.n_tokens

def _cli(*args, **kw):
    return subprocess.run([str(BIN/"ntp_rl_entropy"), *args], capture_output=True, text=True, env=ENV, **kw)

ARGS = ["--model", "tiny-llama", "--data", "verne", "--window", "32", "--shard-windows", "4", "--batch-size", "4",
        "--device", "cpu", "--quiet", "--n-docs", "40", "--plot-rows", "5000"]

def test_cli_resume_after_sigkill(tmp_path):
    "An uninterrupted run and a run killed with SIGKILL mid-way then resumed give byte-identical shards."
    ref = tmp_path/"ref"
    r = _cli(*ARGS, "--out", str(ref))
    assert r.returncode == 0, r.stderr
    summary = json.loads((ref/"summary.json").read_text())
    assert {"model", "data", "n_windows", "n_tokens", "mean_entropy", "median_entropy"} <= set(summary)
    assert sorted(p.name for p in ref.glob("*.png")) == [f"entropy_{k}.png" for k in ("class", "distribution", "position", "surprisal")]
    shards = sorted(p.name for p in ref.glob("shard-*.parquet"))
    assert len(shards) == json.loads((ref/"run.json").read_text())["n_shards"] > 20

    out = tmp_path/"killed"
    p = subprocess.Popen([str(BIN/"ntp_rl_entropy"), *ARGS, "--out", str(out)], env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("shard-*.parquet"))) < 3: time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    done = len(list(out.glob("shard-*.parquet")))
    assert 3 <= done < len(shards), f"kill landed after {done} of {len(shards)} shards"
    assert not (out/"summary.json").exists()
    r = _cli(*ARGS, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.glob("shard-*.parquet")) == shards
    for s in shards: assert (out/s).read_bytes() == (ref/s).read_bytes(), s
    assert not list(out.glob(".*tmp*"))
    s2 = json.loads((out/"summary.json").read_text())
    assert s2["mean_entropy"] == summary["mean_entropy"]

def test_resume_into_other_run_refused(tmp_path):
    cfg = dict(model="tiny-llama", data="verne", window=32, device="cpu", out=str(tmp_path), plot_rows=1000)
    run_entropy(EntropyConfig(n_docs=3, **cfg), progress=False)
    with pytest.raises(NtpRlError, match="different run .*n_docs"): run_entropy(EntropyConfig(n_docs=4, **cfg), progress=False)

@pytest.mark.parametrize("kw,msg", [
    (dict(data="wki"), "unknown corpus 'wki'"),
    (dict(data="/no/such/file.txt"), "no such file"),
    (dict(model="./no-such-model"), "does not exist"),
    (dict(window=5000, model="tiny-gpt2"), "longer than the model's context"),
    (dict(top_k=0), "top_k"),
    (dict(boundaries="respect"), "pack, split"),
])
def test_bad_inputs(tmp_path, kw, msg):
    base = dict(model="tiny-llama", data="verne", n_docs=2, device="cpu", out=str(tmp_path/"o"))
    with pytest.raises(NtpRlError, match=msg): run_entropy(EntropyConfig(**{**base, **kw}), progress=False)

def test_cli_error_is_one_line(tmp_path):
    r = _cli("--model", "tiny-llama", "--data", "wki", "--device", "cpu", "--out", str(tmp_path))
    from ntp_rl.data import CORPORA
    assert list(CORPORA)[:6] == ["wiki", "gsm", "shakespeare", "verne", "twohop", "twohop-pretrain"]
    assert r.returncode == 2 and r.stderr.strip() == f"error: unknown corpus 'wki'; use one of: {', '.join(CORPORA)}, " \
        "or a path to a .txt/.jsonl/.json/.parquet file", r.stderr

def test_reading_bad_folders(tmp_path):
    with pytest.raises(NtpRlError, match="does not exist"): load_entropies(tmp_path/"none")
    with pytest.raises(NtpRlError, match="holds no shard"): load_entropies(tmp_path)
    (tmp_path/"shard-00000.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(NtpRlError, match="not a readable entropy shard"): load_entropies(tmp_path)
    with pytest.raises(NtpRlError, match="unknown column"): load_entropies(tmp_path, ["nope"])
