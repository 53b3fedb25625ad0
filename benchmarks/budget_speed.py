"""Cost of a variable-budget training step vs a fixed-budget step at the same maximum T, and inference thought tokens per
emitted token vs fixed Quiet-STaR with the NLL each reaches, measured side by side (issue 6).

Training: the real `BudgetObjective` step (rollout + replay, forward and backward), training thoughts of the maximum
budget at a share f of the positions (`n_positions` = f·(L−1), mean budget f·T_max) and at every position (what
Quiet-STaR at T_max costs through the same code). The proportional cost is the fixed step's time × the ratio of ideal token-forwards
(text passes + Σ over thinking positions of K·(T + A − 1) replay and K·(T − 2) sampling tokens); goal: measured ratio
within 1.2× of it.

Generation, side by side (interleaved repeats, medians): plain generation (04's loop with the constant decision "no
thought") against adaptive generation whose value estimates choose budget 0 everywhere (the full decision runs at every
token: the estimator's layer norm and three matrix-vector products, the best net value; goal: >= 0.95x the tokens/s of
plain, i.e. the decision costs almost nothing), and a decide function that returns 0 without looking (the loop's own overhead). Fixed thoughts (T_max before
every token) and thoughts with a horizon of 4 are timed beside them.

Inference quality: on validation windows, next-token and look-ahead NLL and thought tokens per position for no
thoughts, fixed T_max everywhere, and the value estimates at several prices (a trained `--budget-model`, else
untrained estimates, which never think).

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

def make_step(a, rate:float):
    "A BudgetObjective step that trains thoughts of T_max at `rate` of the positions (n_positions = rate·(L-1)): a function, and n."
    seed_everything(0)
    lm, tok = load_model(a.model, dtype=a.dtype, device=a.device)
    n = max(1, round(rate * (a.L - 1)))
    cfg = BudgetConfig(budgets=(0, a.T), lookaheads=(a.A,), thought=dict(n_thoughts=a.K), n_positions=0 if n >= a.L - 1 else n)
    obj = BudgetObjective(cfg, tok)
    lm = obj.prepare_model(lm.train()).to(lm.device); obj.to(lm.device)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, len(tok) - 2, (a.batch, a.L), generator=g).to(lm.device)
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids))
    params = [p for p in list(lm.parameters()) + list(obj.parameters()) if p.requires_grad]
    def step():
        sync(lm.device); t = time.perf_counter()
        out = obj(lm, batch); out["loss"].backward()
        for p in params: p.grad = None
        sync(lm.device)
        return time.perf_counter() - t, out["metrics"]
    return step, min(n, a.L - 1)

def step_costs(a, rates:list) -> dict:
    "Median seconds per step at each rate, the steps of all rates interleaved (same load for all), and the ideal token counts."
    steps = {r: make_step(a, r) for r in rates}
    ts, ms = {r: [] for r in rates}, {r: [] for r in rates}
    for i in range(a.repeats + 1):
        for r in (rates if i % 2 else rates[::-1]):
            sec, m = steps[r][0]()
            if i: ts[r].append(sec); ms[r].append(m)
    B, L, K, T, A = a.batch, a.L, a.K, a.T, a.A
    out = {}
    for r in rates:
        f = statistics.mean(m["train_thought_tokens"] / T for m in ms[r]) * steps[r][1] / (L - 1)  # share of the L-1 positions that think
        ideal = 2 * B * L + B * (L - 1) * f * K * ((T - 2) + (T + A - 1))  # two text passes + sampling + replay tokens
        out[r] = dict(seconds=statistics.median(ts[r]), chain_tokens=statistics.mean(m["chain_tokens"] for m in ms[r]),
                      ideal_tokens=ideal, think_rate=f, mean_budget=f * T)
    return out

def inference(a) -> dict:
    if a.budget_model:
        at = load_budget_model(a.budget_model, dtype=a.dtype, device=a.device)
        th, pol = at.thinker, at.values
    else:
        lm, tok = load_model(a.model, dtype=a.dtype, device=a.device)
        th = make_thinker(lm, tok, ThoughtConfig(thought_len=a.T))
        pol = new_budget_values(lm, BudgetConfig(budgets=(0, 2, 4, 8, a.T) if a.T > 8 else (0, 2, a.T)))
    tok, T = th.tok, max(pol.budgets)
    ws = load_windows(DataConfig(a.corpus, window=a.L, n_docs=a.n_docs), tok, max_context=model_context(th.model))["val"][:a.eval_windows]
    rows = {}
    arms = [("none", place_fixed(0), 0.0), (f"fixed_T{T}", place_fixed(T), 0.0)] + \
           [(f"values_lam{lam}", place_values(pol), lam) for lam in a.lams]
    for name, place, lam in arms:
        rows[name] = summarize_placement(evaluate_placement(th, ws, place, pol.budgets, n_ahead=a.A, lam=lam, batch_size=a.batch))
    gens = generation_speed(a, th, pol)
    return dict(trained_policy=bool(a.budget_model), eval=rows, generation=gens)

def generation_speed(a, th, pol) -> dict:
    "Tokens/s of each generation arm, interleaved over `a.gen_repeats` rounds (medians), and the headline ratio."
    import copy
    model, tok, T = th.model, th.tok, max(pol.budgets)
    zero_pol = copy.deepcopy(pol)
    with torch.no_grad(): zero_pol.out.bias.fill_(-1e4)  # the estimates still run in full; every thought is a loss
    arms = {
        "plain": lambda: generate_plain(model, tok, a.prompt, a.new_tokens),
        "adaptive_policy_zero": lambda: generate_adaptive(model, tok, a.prompt, zero_pol, a.lams[-1], a.new_tokens, th.head),
        "decide_returns_zero": lambda: generate_with_thoughts(model, tok, a.prompt, None, a.new_tokens, th.head,
                                                              decide=lambda pt: NO_THOUGHTS),
        f"fixed_T{T}": lambda: generate_with_thoughts(model, tok, a.prompt, ThoughtConfig(thought_len=T), a.new_tokens, th.head),
        f"fixed_T{T}_horizon4": lambda: generate_with_thoughts(model, tok, a.prompt, ThoughtConfig(thought_len=T, n_ahead=4),
                                                               a.new_tokens, th.head, decide=(T, 4)),
    }
    runs = {k: [] for k in arms}
    for r in range(a.gen_repeats + 1):
        for k in (list(arms) if r % 2 else list(arms)[::-1]):  # alternate the order: drift hits every arm alike
            g = arms[k]()
            if r: runs[k].append(g)
    assert all(b == 0 for g in runs["adaptive_policy_zero"] for b in g.budgets)
    out = {k: dict(tokens_per_s=statistics.median(g.tokens_per_s for g in v), ttft_ms=statistics.median(g.ttft_s for g in v) * 1e3,
                   thought_tokens_per_token=v[0].thought_tokens_per_token, tokens=len(v[0].token_ids)) for k, v in runs.items()}
    for k in out: out[k]["vs_plain"] = out[k]["tokens_per_s"] / out["plain"]["tokens_per_s"]
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--budget-model", default="", help="a budget-model folder or checkpoint for the inference part")
    ap.add_argument("--device", default="cpu"); ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", type=int, default=2); ap.add_argument("--L", type=int, default=64)
    ap.add_argument("--T", type=int, default=16); ap.add_argument("--A", type=int, default=4); ap.add_argument("--K", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rates", default="0.1,0.25,0.5", help="shares of positions training thoughts of T (mean budget = rate·T)")
    ap.add_argument("--lams", default="0.0,0.01,0.05", help="prices for the inference part")
    ap.add_argument("--corpus", default="verne"); ap.add_argument("--n-docs", type=int, default=50)
    ap.add_argument("--eval-windows", type=int, default=4); ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--gen-repeats", type=int, default=9, help="interleaved rounds of the generation arms (medians)")
    ap.add_argument("--prompt", default="The year 2889 was")
    ap.add_argument("--skip-inference", action="store_true")
    a = ap.parse_args()
    a.lams = [float(x) for x in a.lams.split(",")]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rates = [float(x) for x in a.rates.split(",")]
    costs = step_costs(a, [1.0] + rates)
    fixed = costs[1.0]
    print(f"fixed budget T={a.T} everywhere: {fixed['seconds']*1e3:.0f} ms/step, {fixed['chain_tokens']:.0f} chain tokens")
    res = dict(args={k: v for k, v in vars(a).items()}, fixed=fixed, variable={})
    for r in rates:
        v = costs[r]
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
            print(f"{k:>22}: thought tokens per emitted token {g['thought_tokens_per_token']:.2f}, TTFT {g['ttft_ms']:.0f} ms, "
                  f"{g['tokens_per_s']:.1f} tok/s = {g['vs_plain']:.3f}x plain")
        print(f"adaptive generation, policy choosing 0 everywhere: {inf['generation']['adaptive_policy_zero']['vs_plain']:.3f}x "
              f"the tokens/s of plain generation (goal >= 0.95)")
        if not inf["trained_policy"]: print("(untrained estimates: they never think; pass --budget-model for trained ones)")
    print(json.dumps(res, default=str))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_result import write_result, flat_rows
    ratios = {f"variable step / proportional (mean budget {100*float(r):.0f}% of max)": v["vs_proportional"] for r, v in res["variable"].items()}
    if "inference" in res:
        ratios["adaptive generation, policy choosing 0 / plain (tokens/s)"] = res["inference"]["generation"]["adaptive_policy_zero"]["vs_plain"]
        ratios["decide returning 0 / plain (tokens/s)"] = res["inference"]["generation"]["decide_returns_zero"]["vs_plain"]
    write_result("budget_speed", flat_rows(json.loads(json.dumps(res, default=str))), ratios=ratios,
                 title="Variable-budget thoughts: cost",
                 description="Variable-budget step cost vs the fixed-budget step at the same maximum T, for mean budgets of "
                             "10/25/50% of the maximum (goal within 1.2x of proportional); adaptive generation whose policy "
                             "chooses 0 everywhere vs plain generation, side by side (goal >= 0.95x the tokens/s).")

if __name__ == "__main__":
    main()
