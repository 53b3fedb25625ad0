"Helpers shared by the trainer-level tests: run the training CLI in a subprocess and read its losses."
import os, subprocess, sys
from pathlib import Path
from ntp_rl.trainer import read_metrics

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "from ntp_rl.cli import ntp_rl_train; ntp_rl_train()\n"

def run(cmd, timeout=600, **kw):
    "Run `cmd` from the repo root; fail with its stderr tail unless it exits 0."
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)
    assert r.returncode == 0, r.stderr[-3000:]
    return r

def losses(out) -> dict:
    "step → loss from a run's metrics.jsonl."
    return {r["step"]: r["loss"] for r in read_metrics(out) if "loss" in r}

def launch_two(tmp_path, *args):
    """`ntp_rl_train` in two processes. accelerate 1.15: `--cpu --num_processes 2` starts ONE process unless given an
    MPI hostfile; `--multi_gpu` on a machine without CUDA starts 2 gloo processes through torchrun, on the CPU."""
    script = tmp_path/"train.py"; script.write_text(SCRIPT)
    return run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", str(script), *args], env=dict(os.environ, OMP_NUM_THREADS="1"))

def assert_resume_exact(tmp_path, args) -> Path:
    "4 steps straight vs 2 steps then resumed to 4 (checkpoint every 2): identical losses. Returns the straight run's folder."
    a, b = tmp_path/"a", tmp_path/"b"
    run([sys.executable, "-c", SCRIPT, *args, "max_steps=4", "save_every=2", f"out_dir={a}"])
    run([sys.executable, "-c", SCRIPT, *args, "max_steps=2", "save_every=2", f"out_dir={b}"])
    run([sys.executable, "-c", SCRIPT, *args, "max_steps=4", "save_every=2", f"out_dir={b}", "resume=latest"])
    la, lb = losses(a), losses(b)
    assert [la[s] for s in (1, 2, 3, 4)] == [lb[s] for s in (1, 2, 3, 4)]
    return a
