"Heavier checks of core: offline failure speed, concurrent default-model conversion, the prepare CLI."
import os, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
from ntp_rl.core import *

ROOT = Path(__file__).resolve().parents[1]

def run_py(code, env=None, timeout=120):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=e,
                          timeout=timeout, cwd=ROOT)

def test_uncached_hub_id_fails_fast_with_alternative():
    t0 = time.time()
    with pytest.raises(NtpRlError, match="not a local folder and not in the Hugging Face cache.*smollm2-135m"):
        load_model("no-such-org/no-such-model-xyz", device="cpu")
    assert time.time() - t0 < 10

def test_uncached_hub_id_fails_fast_even_without_offline_flag():
    "Without HF_HUB_OFFLINE the Hub is probed first (2 s), so there is no ~20 s retry storm."
    r = run_py("""
        import time; t = time.time()
        from ntp_rl.core import load_model, run_cli
        import torch, transformers  # imported on first use by load_model; not what this test times
        t = time.time()
        try: run_cli(load_model, "gpt2", device="cpu")
        finally: print("seconds", time.time() - t)
    """, env=dict(HF_HUB_OFFLINE="", TRANSFORMERS_OFFLINE=""))
    assert r.returncode == 2, r.stderr[-2000:]
    err = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(err) == 1 and "local folder" in err[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert float(r.stdout.split("seconds")[-1]) < 10

def test_missing_local_folder_is_named():
    with pytest.raises(NtpRlError, match="does not exist"): load_model("./no/such/folder", device="cpu")

def test_concurrent_conversion_is_atomic(tmp_path):
    "Two processes convert the default model into an empty cache at once: one folder results, no temporary left over."
    code = """
        from ntp_rl.core import prepare_default_model, load_model
        p = prepare_default_model(); m, t = load_model("smollm2-135m", device="cpu"); print("OK", p)
    """
    env = dict(os.environ, NTP_RL_CACHE=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=ROOT) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    assert all("OK" in o[0] for o in outs)
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock"))
    assert names == ["smollm2-135m"], names
    assert (tmp_path/"smollm2-135m"/"model.safetensors").stat().st_size > 500e6

def test_killed_conversion_leaves_nothing_half_written(tmp_path):
    code = "from ntp_rl.core import prepare_default_model; prepare_default_model()"
    env = dict(os.environ, NTP_RL_CACHE=str(tmp_path))
    p = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".smollm2-135m.tmp-*")): time.sleep(0.2)
    time.sleep(1.0); p.kill(); p.wait()
    assert not (tmp_path/"smollm2-135m").exists()  # never a partial final folder
    # the next run cleans the stale temporary folder and completes
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-1500:]
    assert not list(tmp_path.glob(".smollm2-135m.tmp-*")) and (tmp_path/"smollm2-135m"/"config.json").exists()

def test_prepare_cli_is_idempotent():
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", "from ntp_rl.cli import ntp_rl_prepare; ntp_rl_prepare()"],
                           capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert r.returncode == 0 and "smollm2-135m:" in r.stdout, r.stderr[-1500:]

@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_models_save_and_load(arch, tmp_path):
    import torch
    m, tok = tiny_model(arch)
    m.save_pretrained(tmp_path); tok.save_pretrained(tmp_path)
    m2, tok2 = load_model(str(tmp_path), device="cpu")
    ids = tok("hello world", return_tensors="pt").input_ids
    torch.testing.assert_close(m(ids).logits, m2(ids).logits)

STEP_FAULTS = """
import resource, sys, torch
from ntp_rl.core import *
from ntp_rl.budget import BudgetConfig, BudgetObjective
torch.set_num_threads(1); seed_everything(0)
if sys.argv[1] == "load": lm, tok = load_model("tiny-llama", device="cpu")  # load_model on the CPU keeps freed memory
else: lm, tok = tiny_model("llama")  # the same model without load_model: glibc's default allocator
obj = BudgetObjective(BudgetConfig(budgets=(0, 8), lookaheads=(4,), thought=dict(n_thoughts=2), n_positions=6), tok)
lm = obj.prepare_model(lm.train())
ids = torch.randint(3, len(tok) - 2, (2, 64), generator=torch.Generator().manual_seed(0))
batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids))
def faults():
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    out = obj(lm, batch); out["loss"].backward(); lm.zero_grad(set_to_none=True); obj.zero_grad(set_to_none=True)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
print(*[faults() for _ in range(6)])
"""

@pytest.mark.skipif(not (sys.platform.startswith("linux") and __import__("platform").libc_ver()[0] == "glibc"), reason="glibc only")
def test_cpu_training_step_reuses_freed_memory_instead_of_page_faulting():
    "A budget step at 10% of the positions: with glibc's default the step page-faults ~400 MiB back in every time; after load_model on the CPU (keep_freed_cpu_memory), the steps after warm-up reuse freed memory."
    runs = {}
    for mode in ("plain", "load"):
        r = subprocess.run([sys.executable, "-c", STEP_FAULTS, mode], capture_output=True, text=True, cwd=ROOT, timeout=300,
                           env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"))
        assert r.returncode == 0, r.stderr[-2000:]
        runs[mode] = [int(x) for x in r.stdout.split()[-6:]]
    assert min(runs["plain"][3:]) > 20_000, runs  # the default allocator re-faults every step (so the check can fail)
    assert sum(runs["load"][3:]) < 20_000, runs  # kept: at most a stray block after warm-up
