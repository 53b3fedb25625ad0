"""Quiet-STaR and distill objectives through the real trainer: exact resume, two processes, curriculum CLI, bad configs."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
from ntp_rl.trainer import checkpoints, read_metrics

from trainutil import ROOT, SCRIPT, run, losses, launch_two, assert_resume_exact
QS = ["objective=quietstar", "objective_args.thought_len=4", "objective_args.n_ahead=2", "objective_args.n_thoughts=2",
      "objective_args.n_positions=6", "model.name_or_path=tiny-llama", "model.device=cpu", "data.corpus=verne",
      "data.window=24", "data.batch_size=2", "lr=1e-3", "warmup_steps=0"]



def test_quietstar_resume_is_exact(tmp_path):
    a = assert_resume_exact(tmp_path, QS)  # constant_with_warmup: max_steps does not change the lr
    rows = [r for r in read_metrics(a) if "loss" in r]
    for k in ("nll_base", "nll_mixed", "policy", "reward_mean", "reward_std", "advantage", "mix_weight", "thought_entropy",
              "tokens_per_s", "peak_mem_mb"):
        assert k in rows[-1], k

def test_quietstar_two_processes(tmp_path):
    launch_two(tmp_path, *QS, "max_steps=2", f"out_dir={tmp_path/'two'}")
    assert sorted(losses(tmp_path/"two")) == [1, 2]
    assert (checkpoints(tmp_path/"two")[-1]/"model"/"mixing_head.safetensors").exists()

def test_bad_quietstar_configs(tmp_path):
    for args, msg in [(["objective_args.thought_len=1"], "at least 2"), (["objective_args.n_ahead=0"], "at least 1 future token"),
                      (["objective_args.T=4"], "not fields of QuietStarConfig")]:
        r = subprocess.run([sys.executable, "-c", SCRIPT, *QS, *args, f"out_dir={tmp_path/'x'}"], capture_output=True,
                           text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]

def test_curriculum_cli_runs_every_stage(tmp_path):
    cfg = tmp_path/"cur.yaml"
    cfg.write_text(f"""
curriculum:
  out_dir: {tmp_path/'cur'}
  base: {{model: {{name_or_path: tiny-llama, device: cpu}}, data: {{corpus: verne, window: 16, batch_size: 2}},
          lr: 0.001, warmup_steps: 0, max_steps: 1}}
  stages:
    - {{name: think, objective: quietstar, objective_args: {{thought_len: 3, n_ahead: 2, n_thoughts: 2, n_positions: 4}}}}
    - {{name: ntp, objective: distill}}
""")
    r = run([sys.executable, "-c", "from ntp_rl.cli import ntp_rl_curriculum; ntp_rl_curriculum()", "--config", str(cfg)])
    stages = [json.loads(l)["stage"] for l in r.stdout.strip().splitlines()]
    assert stages == ["think", "ntp"]
    assert sorted(p.name for p in (tmp_path/"cur").iterdir()) == ["0_think", "1_ntp"]
