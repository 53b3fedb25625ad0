"""Entropy pipeline vs a plain forward pass, side by side on the same windows, and peak memory at 1k vs 10k windows.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/entropy_speed.py                      # tiny model, CPU (~2-3 min)
    python benchmarks/entropy_speed.py --model smollm2-135m --device cuda --dtype bfloat16 --window 256 --batch-size 32

Throughput: tokens/s of `model(**batch).logits` alone, and of `compute_entropies` (forward + fp32 statistics + token
text + parquet shards written to disk), measured alternately `--repeats` times on the same windows (best of each).
Goal: ratio >= 0.9. Memory: `compute_entropies` on N and 10N windows, each in a fresh process; peak RSS (CPU) or peak
CUDA memory, reported in total and above the process's level just before the run (model and windows loaded).
Goal: flat within 10%.
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path
import torch

def windows_for(tok, n, window):
    "n windows of `window` tokens, cut from Wikipedia leads packed end to end (cycled if the corpus runs out)."
    from ntp_rl.data import load_corpus, tokenize_docs, make_windows
    ids = [t for d in tokenize_docs(tok, load_corpus("wiki", n_docs=400)) for t in d + [tok.eos_token_id]]
    need = n * window
    ids = (ids * (need // len(ids) + 1))[:need - 1]  # make_windows adds one EOS
    w = make_windows([ids], window, tok.pad_token_id, tok.eos_token_id, "pack")
    return w, torch.full_like(w.input_ids, -1)

def sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize()

@torch.no_grad()
def plain_forward(model, wins, batch_size):
    from ntp_rl.data import iter_batches
    dev = next(model.parameters()).device
    t = time.perf_counter()
    for b in iter_batches(wins, batch_size, device=dev): model(**b).logits
    sync(dev); return wins.n_tokens / (time.perf_counter() - t)

def pipeline(model, tok, wins, batch_size, shard_windows, top_k):
    from ntp_rl.entropy import compute_entropies
    dev = next(model.parameters()).device
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        compute_entropies(model, tok, wins, Path(d)/"e", None, top_k, batch_size, shard_windows, progress=False)
        sync(dev); return wins.n_tokens / (time.perf_counter() - t)

def rss_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

def memory_child(a):
    "Run in a fresh process: load, build the windows, then score them; print peak memory as JSON."
    from ntp_rl.core import load_model
    model, tok = load_model(a.model, a.dtype, a.device)
    dev = next(model.parameters()).device
    wins, _ = windows_for(tok, a.child, a.window)
    if dev.type == "cuda": torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated() / 2**20
    else: base = rss_mb()  # model and windows loaded, nothing scored yet
    tps = pipeline(model, tok, wins, a.batch_size, a.shard_windows, a.top_k)
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else rss_mb()
    print(json.dumps(dict(n=a.child, tokens=wins.n_tokens, base_mb=base, peak_mb=peak, tok_s=tps)))

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny-llama"); p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32"); p.add_argument("--window", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16); p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--shard-windows", type=int, default=256)
    p.add_argument("--speed-windows", type=int, default=256, help="windows in the throughput comparison")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mem-windows", type=int, default=1000, help="N: memory is compared at N and 10N windows")
    p.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/entropy_speed.json")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child is not None: return memory_child(a)

    from ntp_rl.core import load_model
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model, tok = load_model(a.model, a.dtype, a.device)
    wins, _ = windows_for(tok, a.speed_windows, a.window)
    plain_forward(model, wins[:a.batch_size], a.batch_size); pipeline(model, tok, wins[:a.batch_size], a.batch_size, a.shard_windows, a.top_k)
    fw, pl = [], []
    for _ in range(a.repeats):  # alternate, so drift in machine load hits both
        fw.append(plain_forward(model, wins, a.batch_size)); pl.append(pipeline(model, tok, wins, a.batch_size, a.shard_windows, a.top_k))
    print(f"model={a.model} device={a.device} dtype={a.dtype} window={a.window} batch={a.batch_size} "
          f"windows={len(wins)} tokens={wins.n_tokens} threads={torch.get_num_threads()}")
    print(f"plain forward      : {max(fw):10.0f} tok/s  (runs: {', '.join(f'{x:.0f}' for x in fw)})")
    print(f"entropy pipeline   : {max(pl):10.0f} tok/s  (runs: {', '.join(f'{x:.0f}' for x in pl)})")
    print(f"throughput ratio   : {max(pl)/max(fw):10.3f}  (goal >= 0.9)")
    del model
    res = []
    for n in (a.mem_windows, 10 * a.mem_windows):
        cmd = [sys.executable, __file__, "--child", str(n)] + [x for k, v in vars(a).items() if k not in ("child", "repeats", "speed_windows", "mem_windows", "no_save")
                                                              for x in (f"--{k.replace('_', '-')}", str(v))]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode: sys.exit(out.stderr)
        res.append(json.loads(out.stdout.strip().splitlines()[-1]))
    unit = "CUDA" if a.device.startswith("cuda") else "RSS"
    for r in res:
        print(f"peak {unit} at {r['n']:6d} windows ({r['tokens']} tokens): {r['peak_mb']:8.1f} MiB total, "
              f"{r['peak_mb'] - r['base_mb']:7.1f} MiB above the pre-run level  ({r['tok_s']:.0f} tok/s)")
    print(f"memory ratio 10N/N : {res[1]['peak_mb']/res[0]['peak_mb']:10.3f} of the total peak  (goal <= 1.10)")
    if a.no_save: return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_result import write_result
    rows = [dict(variant="plain forward", tok_per_s=round(max(fw))), dict(variant="entropy pipeline", tok_per_s=round(max(pl)))]
    rows += [dict(variant=f"memory at {r['n']} windows", tokens=r["tokens"], peak_mib=round(r["peak_mb"], 1),
                  above_pre_run_mib=round(r["peak_mb"] - r["base_mb"], 1)) for r in res]
    write_result("entropy_speed", rows, ratios={"entropy / plain throughput (goal >= 0.9)": round(max(pl)/max(fw), 3),
                                                "peak memory 10N / N (goal <= 1.10)": round(res[1]["peak_mb"]/res[0]["peak_mb"], 3)},
                 title="Entropy pipeline throughput and memory",
                 description=f"{a.model} on {a.device} ({a.dtype}), window {a.window}, batch {a.batch_size}: the full pipeline "
                             "(fp32 statistics, top-k, parquet shards) vs a plain forward on the same windows; peak memory at N vs 10N windows.")

if __name__ == "__main__": main()
