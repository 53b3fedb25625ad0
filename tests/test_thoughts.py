"""Correctness of ntp_rl.thoughts: parallel thoughts equal a per-position reference (tiny Llama and GPT-2, B > 1 with
padding, K > 1), positions are isolated, the replay equals the sampler, save/load is bit-exact, an untrained mixing
head returns the base predictions exactly, bad configs fail clearly, inference with thoughts matches the training
semantics (one generation loop: no thoughts, fixed thoughts, decided thoughts with a horizon), and the `ntp_rl_think`
command runs."""
import copy, subprocess, sys
from pathlib import Path
import pytest
import torch
import transformers
from ntp_rl.core import NtpRlError, tiny_model, load_model, seed_everything
from ntp_rl.thoughts import *

TEXTS = ["The cat sat on the mat and looked at me for a while.", "Two plus two is four.", "Hello there, friend"]


def _setup(arch="llama", attn="sdpa", K=2, T=4, A=3, gate=0.7):
    model, tok = tiny_model(arch, attn_implementation=attn)
    cfg = ThoughtConfig(thought_len=T, n_ahead=A, n_thoughts=K)
    th = make_thinker(model, tok, cfg)
    with torch.no_grad():  # a head that actually mixes (w ≈ gate, varying by position)
        th.head.mlp[2].bias.add_(4.0 + gate); th.head.mlp[2].weight.mul_(2.0)
    enc = tok(TEXTS, return_tensors="pt", padding=True)
    assert enc.attention_mask.sum(1).unique().numel() == 3  # three different lengths: right padding is exercised
    return th, enc


def _assert_close(a, b, mask=None, atol=1e-4):
    if mask is not None: a, b = a[mask.expand_as(a)], b[mask.expand_as(b)]
    torch.testing.assert_close(a, b, atol=atol, rtol=atol)


def _compare(x, y, atol=1e-4):
    "All outputs of two Thoughts for the same tokens agree on every valid entry."
    vk = x.valid[:, None]
    assert torch.equal(x.tokens, y.tokens) and torch.equal(x.targets, y.targets) and torch.equal(x.valid, y.valid)
    _assert_close(x.logprobs, y.logprobs, atol=atol)
    _assert_close(x.post_hidden, y.post_hidden, vk[..., None], atol=atol)
    _assert_close(x.lookahead_logprobs, y.lookahead_logprobs, vk, atol=atol)
    _assert_close(x.base_logprobs, y.base_logprobs, x.valid, atol=atol)
    _assert_close(x.mix_weights, y.mix_weights, vk, atol=atol)
    _assert_close(x.mixed_logprobs, y.mixed_logprobs, vk, atol=atol)


@pytest.mark.parametrize("arch,attn", [("llama", "sdpa"), ("gpt2", "sdpa"), ("llama", "eager"), ("gpt2", "eager")])
def test_parallel_equals_per_position_reference(arch, attn):
    th, enc = _setup(arch, attn)
    g = torch.Generator().manual_seed(0)
    par = sample_thoughts(th.model, enc.input_ids, enc.attention_mask, th.cfg, th.marks, th.head, generator=g)
    ref = reference_thoughts(th.model, enc.input_ids, enc.attention_mask, par.tokens, th.cfg, th.marks, th.head)
    _compare(par, ref, atol=1e-4)
    assert par.valid.sum() > 0 and (par.mix_weights > 0).all()
    # the K thoughts differ (sampling at temperature 1 over a 49 k vocab) and are scored separately
    assert not torch.equal(par.tokens[:, 0], par.tokens[:, 1])


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_replay_equals_sampler_and_has_gradient(arch):
    th, enc = _setup(arch, T=5, A=2)
    par = sample_thoughts(th.model, enc.input_ids, enc.attention_mask, th.cfg, th.marks, th.head)
    rep = thought_forward(th.model, enc.input_ids, enc.attention_mask, par.tokens, th.cfg, th.marks, th.head)
    _compare(par, rep, atol=1e-5)
    g = lambda: torch.Generator().manual_seed(5)  # the tokens-only sampler draws the same thoughts
    tokens, lps = sample_thought_tokens(th.model, enc.input_ids, enc.attention_mask, th.cfg, th.marks, generator=g())
    full = sample_thoughts(th.model, enc.input_ids, enc.attention_mask, th.cfg, th.marks, th.head, generator=g())
    assert torch.equal(tokens, full.tokens) and torch.equal(lps, full.logprobs)
    vk = rep.valid[:, None]
    loss = -(rep.mixed_logprobs * vk).sum() / vk.sum() - rep.logprobs.mean()
    loss.backward()
    emb = th.model.get_input_embeddings().weight
    assert emb.grad[th.marks.ids].abs().sum(-1).gt(0).all()  # both markers learn
    assert all(p.grad is not None for p in th.head.parameters())
    assert torch.isfinite(emb.grad).all()


@pytest.mark.parametrize("T", [2, 3])
def test_shortest_thoughts(T):
    "T = 2 (markers only, nothing sampled) and T = 3 (one sampled token) take the edge paths of the step loop."
    th, enc = _setup("llama", K=1, T=T, A=2)
    par = sample_thoughts(th.model, enc.input_ids, enc.attention_mask, th.cfg, th.marks, th.head)
    assert par.tokens.shape[-1] == T and par.logprobs.shape[-1] == T - 2
    ref = reference_thoughts(th.model, enc.input_ids, enc.attention_mask, par.tokens, th.cfg, th.marks, th.head)
    _compare(par, ref)


def test_subset_of_positions():
    "Thinking at a subset of positions (the seam for variable thought budgets) gives the same numbers there."
    th, enc = _setup("gpt2", K=1)
    full = sample_thoughts(th.model, enc.input_ids, enc.attention_mask, th.cfg, th.marks, th.head)
    pos = torch.tensor([[0, 3, 7], [1, 2, 4], [5, 0, 2]])  # (B, P), different per window
    tokens = full.tokens.gather(2, pos[:, None, :, None].expand(-1, 1, -1, th.cfg.T))
    sub = thought_forward(th.model, enc.input_ids, enc.attention_mask, tokens, th.cfg, th.marks, th.head, positions=pos)
    pick = lambda x: x.gather(2, pos[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[-1]))
    vk = sub.valid[:, None]
    _assert_close(sub.lookahead_logprobs, pick(full.lookahead_logprobs), vk)
    _assert_close(sub.mixed_logprobs, pick(full.mixed_logprobs), vk)
    _assert_close(sub.logprobs, pick(full.logprobs))
    ref = reference_thoughts(th.model, enc.input_ids, enc.attention_mask, tokens, th.cfg, th.marks, th.head, positions=pos)
    _compare(sub, ref)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_positions_are_isolated(arch):
    "Changing one position's thought changes that position's outputs only; the text pass never sees thoughts."
    th, enc = _setup(arch, K=2)
    par = sample_thoughts(th.model, enc.input_ids, enc.attention_mask, th.cfg, th.marks, th.head)
    b, k, p = 0, 1, 4
    tok2 = par.tokens.clone()
    tok2[b, k, p, 1:-1] = (tok2[b, k, p, 1:-1] + 17) % 1000  # a different thought at one (window, sample, position)
    x = thought_forward(th.model, enc.input_ids, enc.attention_mask, par.tokens, th.cfg, th.marks, th.head)
    y = thought_forward(th.model, enc.input_ids, enc.attention_mask, tok2, th.cfg, th.marks, th.head)
    with torch.no_grad():
        changed = (x.post_hidden - y.post_hidden).abs().amax(dim=(-1, -2))  # (B, K, P)
    assert changed[b, k, p] > 1e-3
    changed[b, k, p] = 0
    assert changed.max() == 0, "another position's outputs moved"
    assert torch.equal(x.base_hidden, y.base_hidden)
    others = torch.ones_like(changed, dtype=torch.bool); others[b, k, p] = False
    assert torch.equal(x.lookahead_logprobs[others], y.lookahead_logprobs[others])
    assert torch.equal(x.logprobs[others], y.logprobs[others])


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_other_llama_family_models(family):
    "Mistral and Qwen2 (attention biases, sliding-window config) run through the same path, exactly."
    _, tok = tiny_model("llama")
    kw = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    cfg = transformers.Qwen2Config(**kw) if family == "qwen2" else transformers.MistralConfig(sliding_window=None, **kw)
    seed_everything(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    th = make_thinker(model, tok, ThoughtConfig(thought_len=4, n_ahead=2, n_thoughts=1))
    with torch.no_grad(): th.head.mlp[2].bias.add_(4.0 + 0.5); th.head.mlp[2].weight.mul_(2.0)
    enc = tok(TEXTS, return_tensors="pt", padding=True)
    par = sample_thoughts(th.model, enc.input_ids, enc.attention_mask, th.cfg, th.marks, th.head)
    ref = reference_thoughts(th.model, enc.input_ids, enc.attention_mask, par.tokens, th.cfg, th.marks, th.head)
    _compare(par, ref)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_untrained_head_gives_base_exactly(arch):
    th, enc = _setup(arch, gate=0.0)
    th.head = new_mixing_head(th.model)
    par = sample_thoughts(th.model, enc.input_ids, enc.attention_mask, th.cfg, th.marks, th.head)
    assert torch.equal(par.mix_weights, torch.zeros_like(par.mix_weights))
    assert torch.equal(par.mixed_logprobs, par.base_logprobs[:, None].expand_as(par.mixed_logprobs))
    # and the base log-probs are the plain model's (marker rows excluded from the softmax)
    with torch.no_grad():
        logits = th.model(**enc).logits.float()
    logits[..., th.marks.ids] = float("-inf")
    lp = torch.log_softmax(logits, -1)
    B, L = enc.input_ids.shape
    for t in range(th.cfg.A):
        n = L - 1 - t
        plain = lp[:, t:t+n].gather(-1, enc.input_ids[:, t+1:t+1+n, None]).squeeze(-1)  # (B, n)
        v = par.valid[:, :n, t]
        torch.testing.assert_close(par.base_logprobs[:, :n, t][v], plain[v], atol=1e-5, rtol=1e-5)


def test_save_load_roundtrip_bit_exact(tmp_path):
    th, enc = _setup("llama")
    with torch.no_grad():  # make everything non-default so a re-initialisation would show
        emb = th.model.get_input_embeddings().weight
        emb[th.marks.ids] += torch.randn(2, emb.shape[1])
        for p in th.head.parameters(): p.add_(torch.randn_like(p))
    save_thinking_model(th, tmp_path/"thinker")
    lo = load_thinking_model(tmp_path/"thinker", device="cpu")
    assert lo.marks == th.marks and lo.cfg == th.cfg
    assert torch.equal(lo.model.get_input_embeddings().weight[lo.marks.ids], emb[th.marks.ids])
    assert torch.equal(lo.model.get_output_embeddings().weight[lo.marks.ids], th.model.get_output_embeddings().weight[th.marks.ids])
    sd0, sd1 = th.head.state_dict(), lo.head.state_dict()
    assert sd0.keys() == sd1.keys() and all(torch.equal(sd0[k], sd1[k]) for k in sd0)
    g = lambda: torch.Generator().manual_seed(3)
    a = sample_thoughts(th.model, enc.input_ids, enc.attention_mask, th.cfg, th.marks, th.head, generator=g())
    b = sample_thoughts(lo.model, enc.input_ids, enc.attention_mask, lo.cfg, lo.marks, lo.head, generator=g())
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.mixed_logprobs, b.mixed_logprobs)
    assert is_thinking_model(tmp_path/"thinker") and not is_thinking_model(tmp_path)
    with pytest.raises(NtpRlError, match="save_thinking_model"): load_thinking_model(tmp_path)


def test_bad_configs_fail_clearly():
    with pytest.raises(NtpRlError, match="at least 2"): ThoughtConfig(thought_len=1)
    with pytest.raises(NtpRlError, match="at least 1 future token"): ThoughtConfig(n_ahead=0)
    with pytest.raises(NtpRlError, match="at least 1 thought"): ThoughtConfig(n_thoughts=0)
    model, tok = tiny_model("gpt2", max_positions=32)
    cfg = ThoughtConfig(thought_len=6, n_ahead=4)
    marks = add_thought_tokens(model, tok, cfg)
    ids = torch.randint(0, 1000, (1, 24))
    with pytest.raises(NtpRlError, match="beyond the model's context of 32; use a window of at most 23"):
        sample_thoughts(model, ids, None, cfg, marks)
    sample_thoughts(model, ids[:, :23], None, cfg, marks)  # the largest window that fits
    plain, tok2 = tiny_model("llama")
    with pytest.raises(NtpRlError, match="add_thought_tokens"): thought_marks(tok2)
    with pytest.raises(NtpRlError, match="call add_thought_tokens"):
        sample_thoughts(plain, ids[:, :8], None, cfg, ThoughtMarks(len(tok2), len(tok2) + 1))
    use_thought_attention(plain)
    with pytest.raises(NtpRlError, match="no rows for the thought tokens"):
        sample_thoughts(plain, ids[:, :8], None, cfg, ThoughtMarks(len(tok2), len(tok2) + 1))
    m2, t2 = tiny_model("llama"); mk = add_thought_tokens(m2, t2, cfg)
    with pytest.raises(NtpRlError, match="positions must be"):
        sample_thoughts(m2, ids[:, :8], None, cfg, mk, positions=torch.tensor([[9]]))
    with pytest.raises(NtpRlError, match="expected \\(B, K, P, T\\)"):
        thought_forward(m2, ids[:, :8], None, torch.zeros(1, 1, 8, 3, dtype=torch.long), cfg, mk)
    m2.set_attn_implementation("flex_attention")
    with pytest.raises(NtpRlError, match="attn_implementation='sdpa' or 'eager'"):
        sample_thoughts(m2, ids[:, :8], None, cfg, mk)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_inference_matches_training_semantics(arch):
    """Greedy thoughts and greedy text: every generated token's thought and mixed choice are what the parallel
    sampler gives at that position of the final sequence (so the thought's KV entries were dropped after use)."""
    model, tok = tiny_model(arch)
    cfg = ThoughtConfig(thought_len=4, n_ahead=1, temperature=0.0)
    th = make_thinker(model, tok, cfg)
    with torch.no_grad(): th.head.mlp[2].bias.add_(4.0 + 1.0); th.head.mlp[2].weight.mul_(2.0)
    prompt = "Once upon a time"
    gen = generate_with_thoughts(model, tok, prompt, cfg, max_new_tokens=5, head=th.head)
    plain = generate_plain(model, tok, prompt, max_new_tokens=5)
    assert len(gen.token_ids) == 5 and len(gen.thought_ids) == 5 and gen.ttft_s > 0 and gen.tokens_per_s > 0
    ids = torch.tensor([tok(prompt, add_special_tokens=False).input_ids + gen.token_ids])
    n0 = ids.shape[1] - len(gen.token_ids)
    pos = torch.arange(n0 - 1, ids.shape[1] - 1)[None]  # the position before each generated token
    par = sample_thoughts(model, ids, None, cfg, th.marks, th.head, positions=pos)
    assert par.tokens[0, 0].tolist() == gen.thought_ids
    w = par.mix_weights[0, 0, :, 0]
    torch.testing.assert_close(w, torch.tensor(gen.weights), atol=1e-5, rtol=1e-5)
    # each generated token is the argmax of the mixed distribution rebuilt from the parallel pass's hidden states
    with torch.no_grad():
        head_w = model.get_output_embeddings()
        lb, lt = head_w(par.base_hidden[0, pos[0]]).float(), head_w(par.post_hidden[0, 0, :, 0]).float()  # (P, V)
        mixed = lb + w[:, None] * (lt - lb)
        mixed[:, th.marks.ids] = float("-inf")
    assert mixed.argmax(-1).tolist() == gen.token_ids
    # untrained head: the same text as plain greedy generation
    gen0 = generate_with_thoughts(model, tok, prompt, cfg, max_new_tokens=5, head=new_mixing_head(model))
    assert gen0.token_ids == plain.token_ids


class TokenCounter:
    "Counts the tokens fed through a model's base forward (a forward pre-hook; nothing in the model changes)."
    def __init__(self, model):
        self.n = 0
        self.h = model.base_model.register_forward_pre_hook(self.hook, with_kwargs=True)
    def hook(self, mod, args, kwargs):
        x = kwargs.get("input_ids", args[0] if args else None)
        self.n += int(x.numel())
    def close(self): self.h.remove()


def _mixing(model, seed=0):
    "A mixing head that mixes (w != 0, varying by position): every parameter moved away from its initialisation."
    head = new_mixing_head(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters(): p.add_(torch.randn(p.shape, generator=g) * 0.3)
        head.mlp[2].bias.add_(4.0)  # w ≈ 0.5 rather than near the offset's 0
    return head


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("T,a", [(4, 3), (2, 2), (5, 1)])
def test_horizon_serves_exactly_a_tokens(arch, T, a):
    """A thought with horizon a stays in the cache for exactly the a tokens after it: each of them is the mixed choice the
    parallel sampler's look-ahead (n_ahead = a, teacher-forced on the generated text) gives there, with the same weight,
    and the next thought (written after a tokens) sees no trace of it. The forwards cost text + b + (a - 1) per thought."""
    model, tok = tiny_model(arch)
    cfg = ThoughtConfig(thought_len=T, n_ahead=a, temperature=0.0)
    th = make_thinker(model, tok, cfg)
    head = _mixing(model)
    prompt, n = "Once upon a time", 2 * a + 1
    c = TokenCounter(model)
    try: gen = generate_with_thoughts(model, tok, prompt, cfg, max_new_tokens=n, head=head, decide=(T, a))
    finally: c.close()
    assert len(gen.token_ids) == n
    decisions = list(range(0, n, a))
    assert gen.budgets == [T if j in decisions else 0 for j in range(n)]
    assert gen.horizons == [a if j in decisions else 0 for j in range(n)]
    assert gen.served_by == [j - j % a for j in range(n)]
    n0 = len(tok(prompt, add_special_tokens=False).input_ids)
    assert c.n == n0 + (n - 1) + T * len(decisions) + sum(min(a, n - d) - 1 for d in decisions)
    ids = torch.tensor([tok(prompt, add_special_tokens=False).input_ids + gen.token_ids])
    pos = torch.tensor([[n0 - 1 + d for d in decisions]])  # the position before each decision's first token
    par = sample_thoughts(model, ids, None, cfg, th.marks, head, positions=pos)
    lm_head = model.get_output_embeddings()
    for p, d in enumerate(decisions):
        assert par.tokens[0, 0, p].tolist() == gen.thought_ids[d]
        for t in range(min(a, n - d)):  # the t-th token the thought serves
            j = d + t
            w = par.mix_weights[0, 0, p, t]
            assert abs(float(w) - gen.weights[j]) < 1e-5 and gen.weights[j] != 0
            with torch.no_grad():
                mixed = mix_logits(lm_head(par.base_hidden[0, n0 - 1 + j]).float(), lm_head(par.post_hidden[0, 0, p, t]).float(), w)
            mixed[th.marks.ids] = float("-inf")
            assert int(mixed.argmax()) == gen.token_ids[j], (p, t)


def test_thought_is_gone_after_its_horizon():
    "Think once with horizon a, then never: every token after the horizon is plain greedy generation from the text so far."
    model, tok = tiny_model("llama")
    th = make_thinker(model, tok, ThoughtConfig(thought_len=5))
    head = _mixing(model, seed=1)
    a, prompt = 3, "In the year 2889 the"
    once = lambda pt: (5, a) if pt.step == 0 else NO_THOUGHTS
    gen = generate_with_thoughts(model, tok, prompt, ThoughtConfig(thought_len=5, n_ahead=a), 8, head=head, decide=once)
    assert gen.budgets == [5] + [0] * 7 and gen.horizons == [a] + [0] * 7 and gen.served_by == [0] * a + [-1] * (8 - a)
    assert all(w != 0 for w in gen.weights[:a]) and gen.weights[a:] == [0.0] * (8 - a)
    rest = generate_plain(model, tok, prompt + tok.decode(gen.token_ids[:a]), 8 - a)
    assert tok.decode(gen.token_ids[a:]) == rest.text


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_decide_zero_everywhere_is_plain_generation(arch):
    """A decide function that always says 0 gives plain generation token for token (checked against an independent
    full forward per step, markers excluded), and the entropy it sees is the base entropy of the text so far."""
    model, tok = tiny_model(arch)
    th = make_thinker(model, tok, ThoughtConfig())
    seen = []
    def zero(pt):
        seen.append(float(pt.entropy)); return NO_THOUGHTS
    prompt = "The capital of France is"
    gen = generate_with_thoughts(model, tok, prompt, ThoughtConfig(), 6, head=_mixing(model), decide=zero)
    assert gen.token_ids == generate_plain(model, tok, prompt, 6).token_ids
    assert gen.budgets == [0] * 6 and gen.served_by == [-1] * 6 and gen.weights == [0.0] * 6 and gen.thought_tokens_per_token == 0
    ids = torch.tensor([tok(prompt, add_special_tokens=False).input_ids + gen.token_ids])
    with torch.no_grad():
        h = transformer_body(model)(input_ids=ids).last_hidden_state[0]
        logits = model.get_output_embeddings()(h).float()
    logits[:, th.marks.ids] = float("-inf")
    n0 = ids.shape[1] - 6
    assert logits[n0 - 1:-1].argmax(-1).tolist() == gen.token_ids
    torch.testing.assert_close(torch.tensor(seen), next_token_entropy(model, h[n0 - 1:-1], th.marks), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("a", [1, 2])
def test_fixed_thoughts_through_a_decide_function(temperature, a):
    """A decide function that always returns (T, a) gives what the constant decision (T, a) gives (there START rides in
    the text token's forward; here it cannot, since the decision needs that forward), thoughts sampled or greedy."""
    model, tok = tiny_model("llama")
    cfg = ThoughtConfig(thought_len=4, n_ahead=a, temperature=temperature)
    make_thinker(model, tok, cfg)
    head = _mixing(model, seed=2)
    fixed = generate_with_thoughts(model, tok, "Once upon a time", cfg, 6, head=head, decide=(4, a), seed=3)
    called = generate_with_thoughts(model, tok, "Once upon a time", cfg, 6, head=head, decide=lambda pt: (4, a), seed=3)
    assert called.token_ids == fixed.token_ids and called.thought_ids == fixed.thought_ids
    assert called.budgets == fixed.budgets and called.horizons == fixed.horizons and called.served_by == fixed.served_by
    torch.testing.assert_close(torch.tensor(called.weights), torch.tensor(fixed.weights), atol=1e-5, rtol=1e-5)
    if a == 1:  # and the default decision is a thought of cfg.thought_len before every token
        default = generate_with_thoughts(model, tok, "Once upon a time", cfg, 6, head=head, seed=3)
        assert default.token_ids == fixed.token_ids and default.thought_ids == fixed.thought_ids


def test_bad_decisions_fail_clearly():
    model, tok = tiny_model("llama")
    make_thinker(model, tok, ThoughtConfig())
    for d in [(1, 1), (4, 0), (-2, 1)]:
        with pytest.raises(NtpRlError, match="budget 0 or >= 2"): generate_with_thoughts(model, tok, "Hi", decide=d, max_new_tokens=2)
        with pytest.raises(NtpRlError, match="budget 0 or >= 2"):
            generate_with_thoughts(model, tok, "Hi", decide=lambda pt, d=d: d, max_new_tokens=2)
    short, tok2 = tiny_model("gpt2", max_positions=16)
    make_thinker(short, tok2, ThoughtConfig())
    ok = ThoughtConfig(thought_len=2, n_ahead=1)  # what the loop checks up front; the decisions ask for more
    with pytest.raises(NtpRlError, match="beyond the model's 16"):
        generate_with_thoughts(short, tok2, "Hi there", ok, 10, decide=lambda pt: (6, 4))


def test_thoughts_html_escapes_everything():
    gen = Generation("a<b", "", [1, 2], ["<x>", "&"], ["\"><img src=x>", ""], [[], []], [0.5, 0.0], 0.1, 1.0)
    out = thoughts_html(gen)
    assert "<img" not in out and "<x>" not in out and "&lt;x&gt;" in out and "a&lt;b" in out and "&amp;" in out
    assert out.count('class="ntp-th"') == 1


def _think_cmd():
    exe = Path(sys.executable).with_name("ntp_rl_think")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from ntp_rl.cli import ntp_rl_think; ntp_rl_think()"]


def test_cli_runs_on_tiny_llama():
    r = subprocess.run(_think_cmd() + ["--model", "tiny-llama", "--prompt", "The capital of France is", "--thought-len", "4",
                                       "--max-new-tokens", "4", "--show-thoughts", "--device", "cpu", "--compare"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("The capital of France is") and len(lines) == 5  # text + one line per token
    assert all(" <- " in l for l in lines[1:])
    assert "TTFT" in r.stderr and "plain:" in r.stderr
    r = subprocess.run(_think_cmd() + ["--model", "tiny-llama", "--thought-len", "4", "--horizon", "2", "--max-new-tokens", "4",
                                       "--show-thoughts", "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert [" <- '" in l for l in r.stdout.splitlines()[1:]] == [True, False, True, False] and "horizon 2" in r.stderr


def test_cli_error_is_one_line(tmp_path):
    r = subprocess.run(_think_cmd() + ["--model", str(tmp_path/"missing"), "--device", "cpu"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1


def test_cli_loads_saved_thinking_model(tmp_path):
    th, _ = _setup("gpt2", K=1, T=3, A=1)
    save_thinking_model(th, tmp_path/"m")
    r = subprocess.run(_think_cmd() + ["--model", str(tmp_path/"m"), "--prompt", "Hi", "--max-new-tokens", "2",
                                       "--device", "cpu", "--show-thoughts"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "(T=3)" in r.stderr  # the saved config's thought length


def test_smollm2_exact_on_a_few_positions():
    "The real default model (30 layers, GQA 9/3): parallel = reference at a few positions."
    model, tok = load_model("smollm2-135m", device="cpu")
    cfg = ThoughtConfig(thought_len=4, n_ahead=2, n_thoughts=1)
    th = make_thinker(model, tok, cfg)
    with torch.no_grad(): th.head.mlp[2].bias.add_(4.0 + 0.5); th.head.mlp[2].weight.mul_(2.0)
    enc = tok(TEXTS[:2], return_tensors="pt", padding=True)
    pos = torch.tensor([0, 3, 6])
    par = sample_thoughts(model, enc.input_ids, enc.attention_mask, cfg, th.marks, th.head, positions=pos)
    ref = reference_thoughts(model, enc.input_ids, enc.attention_mask, par.tokens, cfg, th.marks, th.head, positions=pos)
    _compare(par, ref, atol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_replay_works_with_gradient_checkpointing(arch):
    "The replay is one cache-free forward, so transformers' gradient checkpointing gives the same loss and gradients."
    th, enc = _setup(arch, K=2, T=4, A=2)
    tokens, _ = sample_thought_tokens(th.model, enc.input_ids, enc.attention_mask, th.cfg, th.marks)
    th.model.train()
    def loss_and_grads():
        th.model.zero_grad(set_to_none=True); seed_everything(1)
        rp = thought_forward(th.model, enc.input_ids, enc.attention_mask, tokens, th.cfg, th.marks, th.head)
        loss = -(rp.mixed_logprobs * rp.valid[:, None]).sum() - rp.logprobs.sum()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in th.model.named_parameters() if p.grad is not None}
    l0, g0 = loss_and_grads()
    th.model.activation_checkpointing_enable()
    l1, g1 = loss_and_grads()
    torch.testing.assert_close(l0, l1)
    assert g0.keys() == g1.keys() and len(g0) > 0
    for n in g0: torch.testing.assert_close(g0[n], g1[n], atol=1e-5, rtol=1e-4)


def test_thought_vocab_restricts_sampling_replay_and_reload(tmp_path):
    "ThoughtConfig.thought_vocab: only its tokens are sampled, log π is normalised over them in the sampler, the replay and the reference, it survives save/load, and the policy still gets gradient."
    model, tok = tiny_model("llama")
    cfg = ThoughtConfig(thought_len=4, n_ahead=2, n_thoughts=3, thought_vocab=" cat dog mat")
    th = make_thinker(model, tok, cfg)
    allowed = set(tok(" cat dog mat", add_special_tokens=False).input_ids)
    assert set(th.marks.allowed) == allowed and len(allowed) == 3
    enc = tok(TEXTS, return_tensors="pt", padding=True)
    par = sample_thoughts(th.model, enc.input_ids, enc.attention_mask, th.cfg, th.marks, th.head, generator=torch.Generator().manual_seed(0))
    assert set(par.tokens[..., 1:-1].unique().tolist()) <= allowed
    assert par.logprobs.exp().max() > 0.2  # normalised over 3 ids, not over the 49k vocabulary (≈ 2e-5 each)
    rep = thought_forward(th.model, enc.input_ids, enc.attention_mask, par.tokens, th.cfg, th.marks, th.head)
    ref = reference_thoughts(th.model, enc.input_ids, enc.attention_mask, par.tokens, th.cfg, th.marks, th.head)
    _assert_close(par.logprobs, rep.logprobs, atol=1e-5); _assert_close(ref.logprobs, rep.logprobs, atol=1e-4)
    rep.logprobs.sum().backward()
    assert th.model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0  # the policy term reaches the LM
    save_thinking_model(th, tmp_path/"t")
    lo = load_thinking_model(tmp_path/"t", device="cpu")
    assert lo.marks == th.marks and lo.cfg.thought_vocab == cfg.thought_vocab
    with pytest.raises(NtpRlError, match="thought_vocab"):
        thought_marks(tok, ThoughtConfig(thought_vocab="<|startofthought|>"))

def test_text_with_thought_markers_is_refused():
    "Markers in the text would be targets whose logit is −∞ (a NaN loss at step 1): one line saying what to use instead."
    model, tok = tiny_model("llama")
    th = make_thinker(model, tok, ThoughtConfig(thought_len=3, n_ahead=1))
    ids = tok(f"the cat {START_THOUGHT} sat {END_THOUGHT} on the mat", return_tensors="pt").input_ids
    with pytest.raises(NtpRlError, match="text holds thought-marker tokens.*not twohop-pretrain"):
        sample_thoughts(th.model, ids, None, th.cfg, th.marks, th.head)
    clean = tok("the cat sat on the mat", return_tensors="pt").input_ids
    assert sample_thoughts(th.model, clean, None, th.cfg, th.marks, th.head).tokens.shape[0] == 1
