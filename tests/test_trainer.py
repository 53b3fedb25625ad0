"""Heavier trainer checks: SIGKILL + resume gives identical losses, kills during save never leave half-written checkpoints,
two processes under `accelerate launch` match one process on the doubled batch, torchrun works, LoRA trains."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from ntp_rl.trainer import checkpoints, read_metrics

from trainutil import ROOT, SCRIPT, run, losses, launch_two
BASE = ["model.name_or_path=tiny-llama", "model.device=cpu", "data.corpus=verne", "data.window=32",
        "data.batch_size=4", "lr=1e-3", "warmup_steps=0", "schedule=cosine"]

def train_cmd(out, *extra): return [sys.executable, "-c", SCRIPT, *BASE, f"out_dir={out}", *extra]



def test_sigkill_then_resume_gives_identical_losses(tmp_path):
    ref, cut = tmp_path/"ref", tmp_path/"cut"
    run(train_cmd(ref, "max_steps=40", "save_every=10"))
    p = subprocess.Popen(train_cmd(cut, "max_steps=40", "save_every=10"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (cut/"checkpoint-000010").exists(): time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    done = [int(c.name.split("-")[1]) for c in checkpoints(cut)]
    assert done and max(done) < 40, f"the run should have been killed mid-way, checkpoints: {done}"
    run(train_cmd(cut, "max_steps=40", "save_every=10", "resume=latest"))
    a, b = losses(ref), losses(cut)
    assert sorted(b) == list(range(1, 41))  # the log holds each step once
    assert [a[s] for s in range(1, 41)] == [b[s] for s in range(1, 41)]  # bit-identical, from the checkpoint on too

def test_kill_during_save_never_leaves_half_written_checkpoint(tmp_path):
    out = tmp_path/"run"
    mid_save = 0
    for extra in (0.0, 0.05, 0.2):  # kill as soon as a save starts, and a little later
        p = subprocess.Popen(train_cmd(out, "max_steps=200", "save_every=1", "keep_last=3", "resume=latest"),
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and not list(out.glob(".tmp-checkpoint-*")): time.sleep(0.005)
        time.sleep(extra)
        mid_save += bool(list(out.glob(".tmp-checkpoint-*")))
        p.send_signal(signal.SIGKILL); p.wait()
        for c in checkpoints(out):
            names = {f.name for f in c.iterdir()}
            assert {"model.safetensors", "optimizer.bin", "scheduler.bin", "trainer_state.json", "config.yaml", "model"} <= names, (c, names)
            assert (c/"model"/"config.json").exists()
    assert mid_save >= 1, "no kill landed during a save"
    r = run(train_cmd(out, "max_steps=200", "save_every=50", "resume=latest"))
    assert json.loads(r.stdout.strip().splitlines()[-1])["steps"] == 200
    assert not list(out.glob(".tmp-checkpoint-*"))  # stale temporaries are cleared by the next save

def test_two_processes_match_one_process_on_doubled_batch(tmp_path):
    one, two = tmp_path/"one", tmp_path/"two"
    common = [x for x in BASE if not x.startswith("data.batch_size")] + ["max_steps=3", "save_every=3"]
    run([sys.executable, "-c", SCRIPT, *common, "data.batch_size=4", f"out_dir={one}"])
    launch_two(tmp_path, *common, "data.batch_size=2", f"out_dir={two}")
    a, b = losses(one), losses(two)
    assert sorted(a) == sorted(b) == [1, 2, 3]
    for s in a: assert abs(a[s] - b[s]) < 1e-4 * max(1, abs(a[s])), (s, a[s], b[s])

def test_torchrun_works(tmp_path):
    script = tmp_path/"train.py"; script.write_text(SCRIPT)
    run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), *BASE, "max_steps=2",
         f"out_dir={tmp_path/'tr'}"], env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert sorted(losses(tmp_path/"tr")) == [1, 2]

def test_lora_trains_only_adapters(tmp_path):
    from ntp_rl.trainer import Trainer, TrainConfig, load_train_config
    cfg = load_train_config(overrides=[*BASE, "max_steps=2", "lora_r=4", f"out_dir={tmp_path}"])
    tr = Trainer(cfg)
    trainable = [n for n, p in tr.module.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable), trainable[:5]
    tr.run()
    assert (checkpoints(tmp_path)[-1]/"model"/"adapter_config.json").exists()

def test_bad_configs_give_one_line_errors(tmp_path):
    for args, msg in [(["objective=dpo"], "use one of: ntp"), (["resume=/no/such/ckpt"], "does not exist"),
                      (["max_step=3"], "unknown TrainConfig fields")]:
        r = subprocess.run(train_cmd(tmp_path/"x", *args), capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]

def test_bf16_mixed_precision_on_cpu(tmp_path):
    "bf16 autocast where supported (CPUs emulate it): a short run stays finite."
    run(train_cmd(tmp_path/"bf", "max_steps=2", "mixed_precision=bf16"))
    import math
    assert all(math.isfinite(v) for v in losses(tmp_path/"bf").values()) and sorted(losses(tmp_path/"bf")) == [1, 2]
