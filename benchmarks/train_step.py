"""Cost of a Quiet-STaR training step vs a plain next-token step on the same batch, measured side by side (issue 5).

Prints: the Quiet-STaR step time ÷ the plain step time, next to the budget the method cannot avoid,
1 + K·(T + A) plain steps (the text pass done once and shared by the K thoughts, then T thought and A look-ahead
tokens per position and thought; goal: within 1.1× of it), and peak memory of both steps, plus the Quiet-STaR step's
peak memory at several thought lengths (goal: linear, not quadratic, growth in T).

Peak memory: `torch.cuda.max_memory_allocated` on a GPU; on a CPU each measurement runs in a fresh subprocess and the
increase of its peak RSS over the loaded model is reported.

    python benchmarks/train_step.py                                   # tiny Llama, CPU (a couple of minutes)
    python benchmarks/train_step.py --model smollm2-135m --device cuda --dtype bfloat16 --batch 8 --L 256
Writes benchmarks/results/train_step.json (rendered on the docs site's Benchmarks page) unless --no-save.
"""
import argparse, json, os, resource, statistics, subprocess, sys, time
from pathlib import Path
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from ntp_rl.core import load_model, seed_everything, pick_device
from ntp_rl.trainer import NextTokenObjective, NextTokenConfig
from ntp_rl.quietstar import QuietStarObjective, QuietStarConfig

def sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize()

def build(a, objective:str, T:int):
    seed_everything(0)
    lm, tok = load_model(a.model, dtype=a.dtype, device=a.device)
    lm.train()
    if objective == "ntp": obj = NextTokenObjective(NextTokenConfig(), tok)
    else: obj = QuietStarObjective(QuietStarConfig(thought=dict(thought_len=T, n_ahead=a.A, n_thoughts=a.K)), tok)
    lm = obj.prepare_model(lm).to(lm.device); obj.to(lm.device)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, len(tok) - 2, (a.batch, a.L), generator=g).to(lm.device)
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids))
    params = [p for p in list(lm.parameters()) + list(obj.parameters()) if p.requires_grad]
    def step():
        out = obj(lm, batch)
        out["loss"].backward()
        for p in params: p.grad = None
    return step, lm.device

def measure(a, objective:str, T:int) -> dict:
    step, dev = build(a, objective, T)
    # the baseline is taken after the model and batch are built, before the first step (the peak is reached in it)
    if dev.type == "cuda": sync(dev); torch.cuda.reset_peak_memory_stats(dev); base = torch.cuda.memory_allocated(dev)
    else: base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step(); sync(dev)  # warm-up
    ts = []
    for _ in range(a.repeats):
        t = time.perf_counter(); step(); sync(dev); ts.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated(dev) - base) / 2**20 if dev.type == "cuda" else \
           (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    return dict(seconds=statistics.median(ts), peak_mb=peak)

def isolated(a, objective:str, T:int) -> dict:
    "On a CPU, measure in a fresh process so peak RSS belongs to this step alone."
    if pick_device(a.device).type == "cuda": return measure(a, objective, T)
    cmd = [sys.executable, __file__, "--child", objective, str(T)] + [f"--{k}={v}" for k, v in vars(a).items() if k not in ("child", "no_save")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")))
    if r.returncode != 0: raise SystemExit(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-llama"); ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32"); ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--L", type=int, default=256); ap.add_argument("--T", type=int, default=11, help="thought_len incl. START/END (12-4: 11)")
    ap.add_argument("--A", type=int, default=4); ap.add_argument("--K", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3); ap.add_argument("--Ts", default="4,8,12,16", help="thought lengths for the memory curve")
    ap.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/train_step.json")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(measure(a, a.child[0], int(a.child[1])))); return
    print(f"model={a.model} device={a.device} dtype={a.dtype} B={a.batch} L={a.L} T={a.T} A={a.A} K={a.K}")
    plain = isolated(a, "ntp", 0)
    qs = isolated(a, "quietstar", a.T)
    budget = 1 + a.K * (a.T + a.A)
    ratio = qs["seconds"] / plain["seconds"]
    print(f"plain next-token step   {plain['seconds']*1e3:9.1f} ms   peak +{plain['peak_mb']:8.1f} MiB")
    print(f"Quiet-STaR step         {qs['seconds']*1e3:9.1f} ms   peak +{qs['peak_mb']:8.1f} MiB")
    print(f"ratio                   {ratio:9.2f} x plain   (budget 1 + K(T+A) = {budget}; ratio/budget = {ratio/budget:.2f}, goal <= 1.10)")
    curve = {int(T): isolated(a, "quietstar", int(T)) for T in a.Ts.split(",")}
    print("peak memory vs thought length (Quiet-STaR step):")
    Ts = sorted(curve)
    for T in Ts: print(f"  T={T:3d}  +{curve[T]['peak_mb']:8.1f} MiB  {curve[T]['seconds']*1e3:8.1f} ms")
    # linear growth: equal increments per added thought token; quadratic growth would make the increments grow
    inc = [(curve[b]["peak_mb"] - curve[a_]["peak_mb"]) / (b - a_) for a_, b in zip(Ts, Ts[1:])]
    print("  MiB per extra thought token between consecutive T: " + ", ".join(f"{x:.1f}" for x in inc))
    if a.no_save: return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_result import write_result
    rows = [dict(variant="plain next-token", T=0, ms=plain["seconds"] * 1e3, peak_mib=plain["peak_mb"]),
            dict(variant="Quiet-STaR", T=a.T, ms=qs["seconds"] * 1e3, peak_mib=qs["peak_mb"])]
    rows += [dict(variant="Quiet-STaR (memory curve)", T=T, ms=curve[T]["seconds"] * 1e3, peak_mib=curve[T]["peak_mb"]) for T in Ts]
    write_result("train_step", rows, ratios={"Quiet-STaR / plain step": round(ratio, 2), "budget 1+K(T+A)": budget,
                                             "ratio / budget (goal <= 1.10)": round(ratio / budget, 2)},
                 title="Quiet-STaR training step vs plain next-token step",
                 description=f"{a.model} on {a.device} ({a.dtype}), B={a.batch}, L={a.L}, T={a.T} (incl. START/END), A={a.A}, K={a.K}; "
                             "forward + backward of each objective on the same batch, medians of repeats.",
                 notes="Peak memory on a CPU is the rise of peak RSS in a fresh process; on a GPU, max_memory_allocated. "
                       "MiB per extra thought token: " + ", ".join(f"{x:.1f}" for x in inc))

if __name__ == "__main__": main()
