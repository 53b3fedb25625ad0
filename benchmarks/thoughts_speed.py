"""Speed of ntp_rl.thoughts, measured side by side in one run (issue 4). Prints three ratios:

(a) parallel thought generation (`sample_thoughts`) vs a per-position loop of plain cached decoding (goal >= 10x);
(b) parallel generation vs the ideal, one forward over the window plus (T+A-1) forwards over the K·L chain tokens,
    i.e. (T+A) x one forward when K = 1 (goal <= 1.25x);
(c) a training step (sample without grad + replay with grad + backward; also with activation checkpointing) vs a dense-mask step in the original's style
    (F iterations over all L positions, DynamicCache, additive [causal | I | I | ...] mask, full-vocab logits every
    iteration, gradient through everything) at equal settings (goal >= 2x faster and <= 1/4 of its peak memory).

Peak memory: `torch.cuda.max_memory_allocated` on a GPU; on a CPU each step runs once in a fresh subprocess (glibc's
mmap threshold fixed, so freed memory is returned at once) and the increase of its peak RSS over the loaded model is
reported, which is coarser.

    python benchmarks/thoughts_speed.py                                  # tiny Llama, CPU
    python benchmarks/thoughts_speed.py --model smollm2-135m --device cuda --dtype bfloat16 --batch 8
"""
import argparse, json, os, resource, statistics, subprocess, sys, time
from pathlib import Path
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from transformers import DynamicCache
from ntp_rl.core import load_model, seed_everything, pick_device
from ntp_rl.thoughts import (ThoughtConfig, make_thinker, sample_thoughts, sample_thought_tokens, thought_forward,
                             sample_ids, lm_logits)


def sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize()


def timed(fn, dev, repeats):
    """Median time of `repeats` calls after one warm-up: wall time on a GPU, this process's CPU time on a CPU (robust to
    other processes sharing the cores; the benchmark runs torch on OMP_NUM_THREADS threads, 1 by default)."""
    clock = time.perf_counter if dev.type == "cuda" else time.process_time
    fn(); sync(dev)
    ts = []
    for _ in range(repeats):
        t = clock(); fn(); sync(dev); ts.append(clock() - t)
    return statistics.median(ts)


@torch.no_grad()
def per_position_loop(model, ids, mask, cfg, marks, positions):
    "Thoughts one position at a time with plain cached decoding: prefill x[:i+1], T-2 sampling steps, the look-ahead."
    T, A, K = cfg.T, cfg.A, cfg.K
    ids, mask = ids.repeat_interleave(K, 0), mask.repeat_interleave(K, 0)
    R, L = ids.shape
    base = model.base_model
    for i in positions:
        cache = DynamicCache()
        m = mask[:, :i+1]
        base(input_ids=ids[:, :i+1], attention_mask=m, cache=cache, use_cache=True)
        feed = torch.full((R, 1), marks.start, device=ids.device)
        for s in range(T - 2):
            m = torch.cat([m, torch.ones_like(feed)], 1)
            h = base(input_ids=feed, attention_mask=m, cache=cache, use_cache=True).last_hidden_state[:, -1]
            feed = sample_ids(lm_logits(model, h, marks), cfg.temperature, None)[:, None]
        ahead = ids[:, i+1:i+A].clone()
        ahead = torch.cat([ahead, ahead.new_zeros(R, A - 1 - ahead.shape[1])], 1)
        block = torch.cat([feed, torch.full_like(feed, marks.end), ahead], 1)  # z_{T-2} (START if T=2), END, x[i+1..]
        m = torch.cat([m, torch.ones_like(block)], 1)
        h = base(input_ids=block, attention_mask=m, cache=cache, use_cache=True).last_hidden_state[:, 1:]
        torch.log_softmax(lm_logits(model, h, marks), -1)  # the look-ahead's distributions


def dense_step(model, head, ids, mask, cfg, marks):
    "One training step in the original's style (nbs/quietstar_algorithm.ipynb, thoughts at every position): dense mask over every earlier iteration's keys."
    T, A, K = cfg.T, cfg.A, cfg.K
    ids, mask = ids.repeat_interleave(K, 0), mask.repeat_interleave(K, 0)
    R, L = ids.shape
    dev, dt = ids.device, model.dtype
    neg = torch.finfo(dt).min
    causal = torch.tril(torch.ones(L, L, dtype=torch.bool, device=dev))[None] & mask.bool()[:, None, :]  # (R, L, L)
    base_mask = torch.zeros(R, 1, L, L, dtype=dt, device=dev).masked_fill(~causal[:, None], neg)
    eye = torch.full((R, 1, L, L), neg, dtype=dt, device=dev)
    eye[:, :, torch.arange(L), torch.arange(L)] = 0
    cache, masks = DynamicCache(), [base_mask]
    shifted = torch.cat([ids[:, 1:], ids.new_zeros(R, 1)], 1)  # x_{i+1}
    lm_head = model.get_output_embeddings()
    base_h = inp = None
    pol, nll = [], []
    for k in range(T + A):
        if k == 0: inp = ids
        elif k == 1: inp = torch.full_like(ids, marks.start)
        elif k == T: inp = torch.full_like(ids, marks.end)
        elif k > T: inp = torch.cat([ids[:, k - T:], ids.new_zeros(R, k - T)], 1)  # x_{i+k-T}
        pos = (torch.arange(L, device=dev) + k)[None].expand(R, -1)
        h = model.base_model(input_ids=inp, attention_mask=torch.cat(masks, -1), position_ids=pos, cache=cache,
                             use_cache=True).last_hidden_state
        raw = lm_head(h).float()  # (R, L, V): full-vocab logits every iteration, as the original
        logits = raw.index_fill(-1, torch.tensor(marks.ids, device=dev), float("-inf"))
        if k == 0: base_h = h
        if 1 <= k <= T - 2:  # sample the next thought token (no pathwise gradient) and keep its policy log-prob
            z = sample_ids(logits.detach().flatten(0, 1), cfg.temperature, None).view(R, L)
            pol.append(torch.log_softmax(logits / cfg.logprob_temperature, -1).gather(-1, z[..., None]).squeeze(-1))
            inp = z
        if k >= T:  # talk: predict x_{i+1+t}, t = k - T, mixing with the base prediction at i+t
            t = k - T
            hb = torch.cat([base_h[:, t:], base_h[:, -1:].expand(-1, t, -1)], 1)
            lb = lm_head(hb).float()
            w = head(hb, h)[..., None]
            mixed = torch.log_softmax(lb + w * (raw - lb), -1)
            tgt = torch.cat([ids[:, 1 + t:], ids.new_zeros(R, 1 + t)], 1)
            nll.append(-mixed.gather(-1, tgt[..., None]).squeeze(-1))
        masks.append(eye)
    loss = torch.stack(nll).mean() - torch.stack(pol).mean() if pol else torch.stack(nll).mean()
    loss.backward()
    return float(loss.detach())


def our_step(model, head, ids, mask, cfg, marks):
    "One training step here: sample the thoughts without gradient, replay them with gradient in one chain forward, backward."
    tokens, _ = sample_thought_tokens(model, ids, mask, cfg, marks)
    rp = thought_forward(model, ids, mask, tokens, cfg, marks, head)
    vk = rp.valid[:, None].float()
    adv = ((rp.mixed_logprobs - rp.base_logprobs[:, None]) * vk).sum(-1).detach()  # (B, K, L) reward as a stand-in advantage
    loss = -(rp.mixed_logprobs * vk).sum() / vk.sum() - (adv[..., None] * rp.logprobs).mean()
    loss.backward()
    return float(loss.detach())


def our_step_ckpt(model, head, ids, mask, cfg, marks):
    "Our step with transformers' activation checkpointing on the replay (the original's cached loop cannot use it)."
    model.activation_checkpointing_enable()
    try: return our_step(model, head, ids, mask, cfg, marks)
    finally: model.activation_checkpointing_disable()


STEPS = {"ours": our_step, "ours+ckpt": our_step_ckpt, "dense": dense_step}


def setup(a):
    seed_everything(0)
    dev = pick_device(a.device)
    model, tok = load_model(a.model, dtype=a.dtype, device=str(dev))
    cfg = ThoughtConfig(thought_len=a.T, n_ahead=a.A, n_thoughts=a.K)
    th = make_thinker(model, tok, cfg)
    th.head.to(dev)
    with torch.no_grad(): th.head.mlp[2].bias.add_(4.0 + 0.5); th.head.mlp[2].weight.mul_(2.0)
    V = model.get_input_embeddings().weight.shape[0]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, min(V - 2, 30000), (a.batch, a.L), generator=g).to(dev)
    mask = torch.ones_like(ids)
    mask[-1, a.L - a.L // 8:] = 0  # some right padding in the last window
    return dev, model, th, cfg, ids, mask


def peak_rss_mb():
    "This process's peak resident memory in MB (VmHWM; unlike ru_maxrss it is not inherited from the parent across exec)."
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"): return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(a):
    "Run one step of `a.child` in this fresh process; print the peak RSS increase (MB) as JSON."
    dev, model, th, cfg, ids, mask = setup(a)
    model.train()
    before = peak_rss_mb()
    STEPS[a.child](model, th.head, ids, mask, cfg, th.marks)
    print(json.dumps({"peak_mb": peak_rss_mb() - before}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--L", type=int, default=256)
    ap.add_argument("--T", type=int, default=12, help="thought length incl. start/end markers")
    ap.add_argument("--A", type=int, default=4)
    ap.add_argument("--K", type=int, default=1, help="thoughts per position")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loop-positions", type=int, default=0,
                    help="time the per-position loop on this many evenly spaced positions and scale to L (0: all L)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: a, b, c")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if a.child: return memory_child(a)
    skip, mem = set(a.skip.split(",")), {}
    if "c" not in skip and pick_device(a.device).type == "cpu":
        # CPU peak memory: one step per fresh process, run before this process allocates anything, one at a time
        for name in STEPS:
            args = [sys.executable, __file__, "--child", name] + sys.argv[1:]
            # a fixed mmap threshold makes glibc return freed blocks at once, so the RSS peak tracks live memory
            env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
            r = subprocess.run(args, capture_output=True, text=True, env=env)
            if r.returncode != 0: raise SystemExit(f"memory child {name} failed:\n{r.stderr[-2000:]}")
            mem[name] = json.loads(r.stdout.strip().splitlines()[-1])["peak_mb"]
    dev, model, th, cfg, ids, mask = setup(a)
    print(f"model={a.model} device={dev} dtype={a.dtype} B={a.batch} L={a.L} T={a.T} A={a.A} K={a.K} "
          f"threads={torch.get_num_threads()} repeats={a.repeats} clock={'wall' if dev.type == 'cuda' else 'process CPU time'}")
    res = {}
    g = torch.Generator(device=dev).manual_seed(0)
    par = lambda: sample_thoughts(model, ids, mask, cfg, th.marks, th.head, generator=g)
    t_par = timed(par, dev, a.repeats)
    res["parallel_s"] = t_par
    print(f"parallel generation (sample_thoughts): {t_par*1e3:9.1f} ms")
    if "a" not in skip:
        n = a.loop_positions or a.L
        pos = torch.linspace(0, a.L - 1, n).round().long().tolist()
        t_loop = timed(lambda: per_position_loop(model, ids, mask, cfg, th.marks, pos), dev, max(1, a.repeats // 2)) * a.L / n
        res["loop_s"] = t_loop
        print(f"per-position loop{' (scaled from %d positions)' % n if n < a.L else ''}: {t_loop*1e3:9.1f} ms"
              f"  -> (a) parallel is {t_loop / t_par:.1f}x faster (goal >= 10x)")
    if "b" not in skip:
        with torch.no_grad():
            t_fwd1 = timed(lambda: model(input_ids=ids, attention_mask=mask), dev, a.repeats)
            idsK, maskK = ids.repeat_interleave(a.K, 0), mask.repeat_interleave(a.K, 0)
            t_fwdK = t_fwd1 if a.K == 1 else timed(lambda: model(input_ids=idsK, attention_mask=maskK), dev, a.repeats)
        ideal = t_fwd1 + (a.T + a.A - 1) * t_fwdK
        res.update(fwd_s=t_fwd1, ideal_s=ideal)
        print(f"one forward over (B, L): {t_fwd1*1e3:.1f} ms; ideal = 1 + (T+A-1) forwards (x K rows) = {ideal*1e3:.1f} ms"
              f"  -> (b) parallel / ideal = {t_par / ideal:.2f}x (goal <= 1.25x)")
    if "c" not in skip:
        model.train()
        def run(step):
            def f():
                model.zero_grad(set_to_none=True); th.head.zero_grad(set_to_none=True)
                step(model, th.head, ids, mask, cfg, th.marks)
            return f
        t = {name: timed(run(step), dev, a.repeats) for name, step in STEPS.items()}
        for name, step in STEPS.items():
            if dev.type == "cuda":
                model.zero_grad(set_to_none=True); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                step(model, th.head, ids, mask, cfg, th.marks); sync(dev)
                mem[name] = (torch.cuda.max_memory_allocated() - base) / 2**20
        res.update({f"train_{n}_s": v for n, v in t.items()}); res.update({f"mem_{n}_mb": v for n, v in mem.items()})
        kind = "peak CUDA memory above the model" if dev.type == "cuda" else "peak RSS increase in a fresh process"
        print(f"training step, {kind}: dense original-style {t['dense']*1e3:.1f} ms, {mem['dense']:.0f} MB")
        for n in ("ours", "ours+ckpt"):
            print(f"  {n:9s} {t[n]*1e3:9.1f} ms, {mem[n]:7.0f} MB  -> (c) {t['dense'] / t[n]:.1f}x faster (goal >= 2x), "
                  f"{mem[n] / max(mem['dense'], 1e-9):.2f} of its memory (goal <= 0.25)")
    print(json.dumps({k: round(v, 4) for k, v in res.items()}))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_result import write_result, flat_rows
    write_result("thoughts_speed", flat_rows({k: round(v, 4) for k, v in res.items()}), title="Parallel thoughts: speed and memory",
                 description=f"{a.model} on {dev} ({a.dtype}), B={a.batch}, L={a.L}, T={a.T}, A={a.A}, K={a.K}: (a) parallel vs "
                             "per-position loop, (b) parallel vs the ideal (T+A) forwards, (c) training step vs a dense original-style step.")


if __name__ == "__main__":
    main()
