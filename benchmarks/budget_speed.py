"""Cost of a variable-budget training step vs a fixed-budget step at the same maximum T, and inference thought tokens per
emitted token vs fixed Quiet-STaR with the NLL each reaches, measured side by side (issue 6).

Training: the real `BudgetObjective` step (rollout + replay, forward and backward), its policy forced to think at a rate
f with the maximum budget (mean budget f·T_max) and at rate 1 (fixed budget everywhere: what Quiet-STaR at T_max costs
through the same code). The proportional cost is the fixed step's time × the ratio of ideal token-forwards
(text passes + Σ over thinking positions of K·(T + A − 1) replay and K·(T − 2) sampling tokens); goal: measured ratio
within 1.2× of it.

Inference: on validation windows, next-token and look-ahead NLL and thought tokens per position for no thoughts, fixed
T_max everywhere, and the policy at several prices (a trained `--budget-model`, else an untrained policy, which never
thinks); then one generation each with `generate_with_thoughts` (fixed) and `generate_adaptive`, with TTFT.

    python benchmarks/budget_speed.py                                   # tiny Llama, CPU (about a minute)
    python benchmarks/budget_speed.py --model smollm2-135m --device cuda --dtype bfloat16 --batch 8 --L 256
    python benchmarks/budget_speed.py --budget-model runs/budget/train/checkpoint-000100   # a trained policy
"""
import argparse, json, os, statistics, sys, time
from pathlib import Path
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from ntp_rl.core import *
from ntp_rl.data import load_windows, model_context
from ntp_rl.thoughts import *
from ntp_rl.budget import *

def sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize()

def step_cost(a, rate:float) -> dict:
    "Median seconds of one BudgetObjective step whose policy thinks (budget T_max) at `rate` of the positions, else 0."
    seed_everything(0)
    lm, tok = load_model(a.model, dtype=a.dtype, device=a.device)
    cfg = BudgetConfig(budgets=(0, a.T), lookaheads=(a.A,), n_thoughts=a.K, explore=0.0)
    obj = BudgetObjective(cfg, tok)
    lm = obj.prepare_model(lm.train()).to(lm.device); obj.to(lm.device)
    with torch.no_grad():  # force the rate: budget logits log(1-rate), log(rate)
        obj.policy.budget_head.bias.copy_(torch.log(torch.tensor([max(1 - rate, 1e-9), max(rate, 1e-9)])))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, len(tok) - 2, (a.batch, a.L), generator=g).to(lm.device)
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids))
    params = [p for p in list(lm.parameters()) + list(obj.parameters()) if p.requires_grad]
    dev, ts, toks, thinking = lm.device, [], [], []
    for i in range(a.repeats + 1):
        sync(dev); t = time.perf_counter()
        out = obj(lm, batch); out["loss"].backward()
        for p in params: p.grad = None
        sync(dev)
        if i: ts.append(time.perf_counter() - t); toks.append(out["metrics"]["chain_tokens"]); thinking.append(1 - out["metrics"]["frac_zero"])
    B, L, K, T, A = a.batch, a.L, a.K, a.T, a.A
    f = statistics.mean(thinking)
    ideal = 2 * B * L + B * (L - 1) * f * K * ((T - 2) + (T + A - 1))  # two text passes + sampling + replay tokens
    return dict(seconds=statistics.median(ts), chain_tokens=statistics.mean(toks), ideal_tokens=ideal, think_rate=f,
                mean_budget=f * T)

def inference(a) -> dict:
    if a.budget_model:
        at = load_budget_model(a.budget_model, dtype=a.dtype, device=a.device)
        th, pol = at.thinker, at.policy
    else:
        lm, tok = load_model(a.model, dtype=a.dtype, device=a.device)
        th = make_thinker(lm, tok, ThoughtConfig(thought_len=a.T))
        pol = new_budget_policy(lm, BudgetConfig(budgets=(0, 2, 4, 8, a.T) if a.T > 8 else (0, 2, a.T)))
    tok, T = th.tok, max(pol.budgets)
    ws = load_windows(DataConfig(a.corpus, window=a.L, n_docs=a.n_docs), tok, max_context=model_context(th.model))["val"][:a.eval_windows]
    rows = {}
    arms = [("none", place_fixed(0), 0.0), (f"fixed_T{T}", place_fixed(T), 0.0)] + \
           [(f"policy_lam{lam}", place_policy(pol), lam) for lam in a.lams]
    for name, place, lam in arms:
        rows[name] = summarize_placement(evaluate_placement(th, ws, place, pol.budgets, n_ahead=a.A, lam=lam, batch_size=a.batch))
    gens = {}
    fixed = generate_with_thoughts(th.model, tok, a.prompt, ThoughtConfig(thought_len=T), a.new_tokens, head=th.head)
    gens[f"fixed_T{T}"] = dict(thought_tokens_per_token=float(T), ttft_ms=fixed.ttft_s * 1e3, tokens_per_s=fixed.tokens_per_s)
    plain = generate_plain(th.model, tok, a.prompt, a.new_tokens)
    gens["plain"] = dict(thought_tokens_per_token=0.0, ttft_ms=plain.ttft_s * 1e3, tokens_per_s=plain.tokens_per_s)
    for lam in a.lams:
        g = generate_adaptive(th.model, tok, a.prompt, pol, lam, a.new_tokens, th.head)
        gens[f"adaptive_lam{lam}"] = dict(thought_tokens_per_token=g.thought_tokens_per_token, ttft_ms=g.ttft_s * 1e3,
                                          tokens_per_s=g.tokens_per_s)
    return dict(trained_policy=bool(a.budget_model), eval=rows, generation=gens)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--budget-model", default="", help="a budget-model folder or checkpoint for the inference part")
    ap.add_argument("--device", default="cpu"); ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", type=int, default=2); ap.add_argument("--L", type=int, default=64)
    ap.add_argument("--T", type=int, default=16); ap.add_argument("--A", type=int, default=4); ap.add_argument("--K", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rates", default="0.1,0.25,0.5", help="fractions of positions thinking at T (mean budget = rate·T)")
    ap.add_argument("--lams", default="0.0,0.01,0.05", help="prices for the inference part")
    ap.add_argument("--corpus", default="verne"); ap.add_argument("--n-docs", type=int, default=50)
    ap.add_argument("--eval-windows", type=int, default=4); ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--prompt", default="The year 2889 was")
    ap.add_argument("--skip-inference", action="store_true")
    a = ap.parse_args()
    a.lams = [float(x) for x in a.lams.split(",")]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    fixed = step_cost(a, 1.0)
    print(f"fixed budget T={a.T} everywhere: {fixed['seconds']*1e3:.0f} ms/step, {fixed['chain_tokens']:.0f} chain tokens")
    res = dict(args={k: v for k, v in vars(a).items()}, fixed=fixed, variable={})
    for r in [float(x) for x in a.rates.split(",")]:
        v = step_cost(a, r)
        t_ratio, prop = v["seconds"] / fixed["seconds"], v["ideal_tokens"] / fixed["ideal_tokens"]
        v.update(time_ratio=t_ratio, proportional_ratio=prop, vs_proportional=t_ratio / prop)
        res["variable"][r] = v
        print(f"mean budget {100*r:.0f}% of max (realised {100*v['think_rate']:.0f}%): step {v['seconds']*1e3:.0f} ms = "
              f"{t_ratio:.2f}x fixed; proportional {prop:.2f}x; measured/proportional {t_ratio/prop:.2f} (goal <= 1.2)")
    if not a.skip_inference:
        inf = inference(a)
        res["inference"] = inf
        for k, s in inf["eval"].items():
            print(f"{k:>18}: thought tokens/position {s['thought_tokens']:.2f}, NLL next {s['nll_next']:.3f}, "
                  f"look-ahead {s['nll_lookahead']:.3f}, at 0: {100*s['frac_zero']:.0f}%")
        for k, g in inf["generation"].items():
            print(f"{k:>18}: thought tokens per emitted token {g['thought_tokens_per_token']:.2f}, TTFT {g['ttft_ms']:.0f} ms, "
                  f"{g['tokens_per_s']:.1f} tok/s")
        if not inf["trained_policy"]: print("(untrained policy: it never thinks; pass --budget-model for a trained one)")
    print(json.dumps(res, default=str))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_result import write_result, flat_rows
    write_result("budget_speed", flat_rows(json.loads(json.dumps(res, default=str))), title="Variable-budget thoughts: cost",
                 description="Variable-budget step cost vs the fixed-budget step at the same maximum T, for mean budgets of "
                             "10/25/50% of the maximum (goal within 1.2x of proportional); inference thought tokens per token.")

if __name__ == "__main__":
    main()
