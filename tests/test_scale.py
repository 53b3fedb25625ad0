"""Scale-out that has run: FSDP2 on 2 CPU processes (gloo) through configs/accelerate/fsdp_cpu.yaml equals one process on
the doubled batch (plain objective and Quiet-STaR with filler thoughts) and DDP on the same processes (Quiet-STaR with
sampled thoughts), a sharded checkpoint killed mid-run resumes on 1 process, the model folder loads on one process, the
multi-node sbatch script of `ntp_rl_run --slurm` runs as two "nodes" on 127.0.0.1, and the DeepSpeed config fits accelerate.

Tolerance: 2 processes vs 1 on the doubled batch differ only in the order of floating-point sums (gradients are
reduce-scattered as per-process means). Losses (and every loss part) must agree to TOL = 1e-5 relative; the gradient
norm, a sum of squares over 3 M numbers, to GRAD_TOL = 1e-4 (measured: losses and loss parts within 1.1e-7, gradient
norms within 2.4e-5). The seven tests take about 115 s of CPU (134 s wall on 2 cores shared with other jobs): twelve 1- or
2-process launches of a 2-layer Llama."""
import json, os, socket, subprocess, sys, time
from pathlib import Path
import pytest, torch, yaml
from ntp_rl.core import NtpRlError, load_model
from ntp_rl.trainer import Trainer, checkpoints, checkpoint_state, load_train_config, read_metrics

from trainutil import ROOT, SCRIPT, run, losses

FSDP_CPU = ROOT/"configs/accelerate/fsdp_cpu.yaml"
TOL, GRAD_TOL = 1e-5, 1e-4  # relative, per logged number
BASE = ["model.name_or_path=tiny-llama", "model.device=cpu", "data.corpus=verne", "data.window=32", "lr=1e-3",
        "warmup_steps=0", "schedule=constant", "max_steps=6", "save_every=2"]
QS = [*BASE[:-2], "max_steps=3", "save_every=3", "objective=quietstar", "data.window=24", "objective_args.thought.thought_len=4",
      "objective_args.thought.n_ahead=2", "objective_args.thought.n_thoughts=1", "objective_args.thought_source=filler"]  # filler: no sampling, so 2 = 1
ENV = dict(os.environ, OMP_NUM_THREADS="1")

def free_port() -> int:
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def fsdp_cmd(tmp, n:int, *args) -> list:
    "`ntp_rl_train` under `accelerate launch` with the CPU FSDP config on `n` processes (a free port: other tests may run)."
    script = Path(tmp)/"train.py"; script.write_text(SCRIPT)
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP_CPU), "--num_processes", str(n),
            "--main_process_port", str(free_port()), str(script), *args]

def one_process(out, *args): return run([sys.executable, "-c", SCRIPT, *args, f"out_dir={out}"], env=ENV)

def rows(out) -> dict:
    "step → the numbers logged for it (training rows only)."
    return {r["step"]: r for r in read_metrics(out) if "loss" in r}

def assert_close(a:dict, b:dict, keys, steps, tol=TOL):
    for s in steps:
        for k in keys:
            assert abs(a[s][k] - b[s][k]) <= tol * max(1.0, abs(a[s][k])), (s, k, a[s][k], b[s][k])

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "The plain objective, 6 steps: FSDP on 2 processes × batch 2 and one process × batch 4."
    d = tmp_path_factory.mktemp("scale")
    run(fsdp_cmd(d, 2, *BASE, "data.batch_size=2", f"out_dir={d/'fsdp2'}"), env=ENV)
    one_process(d/"one", *BASE, "data.batch_size=4")
    return d

def test_fsdp_two_processes_match_one_process_on_doubled_batch(runs):
    a, b = rows(runs/"one"), rows(runs/"fsdp2")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
    assert_close(a, b, ["loss", "lr"], range(1, 7))
    assert_close(a, b, ["grad_norm"], range(1, 7), GRAD_TOL)
    assert a[6]["loss"] < a[1]["loss"] - 0.05  # it learned: equal curves of a model that did not move would prove little
    va, vb = [[r["val_nll"] for r in read_metrics(runs/x) if "val_nll" in r][-1] for x in ("one", "fsdp2")]
    assert abs(va - vb) <= TOL * va
    ck = checkpoints(runs/"fsdp2")[-1]
    assert len(list((ck/"pytorch_model_fsdp_0").glob("*.distcp"))) == 2 and not (ck/"model.safetensors").exists()  # sharded
    assert checkpoint_state(ck)["processes"] == 2

def test_fsdp_model_folder_loads_on_one_process(runs):
    "The checkpoint's model/ folder is whole: `load_model` on one process gives the weights the one-process run trained."
    (m2, _), (m1, _) = [load_model(str(checkpoints(runs/x)[-1]/"model"), device="cpu") for x in ("fsdp2", "one")]
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    start, _ = load_model("tiny-llama", device="cpu")
    moved = max((s1[k] - start.state_dict()[k]).abs().max().item() for k in s1)
    diff = max((s1[k] - s2[k]).abs().max().item() for k in s1)
    assert moved > 1e-3 and diff < 1e-5, (moved, diff)
    assert m2.lm_head.weight is m2.get_input_embeddings().weight  # still tied

def test_sharded_checkpoint_killed_then_resumed_on_one_process(runs, tmp_path):
    "2 processes, SIGKILL after checkpoint 2; resumed on 1 process (batch doubled): steps 1-6 equal the uninterrupted run."
    cut = tmp_path/"cut"
    p = subprocess.Popen(fsdp_cmd(tmp_path, 2, *BASE, "data.batch_size=2", f"out_dir={cut}"), cwd=ROOT, env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (cut/"checkpoint-000002").exists(): time.sleep(0.02)
    import psutil  # every process of the run dies at once, as when a node fails (torchrun's workers outlive a killed torchrun)
    for q in [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]: q.kill()
    p.wait()
    done = [checkpoint_state(c)["step"] for c in checkpoints(cut)]
    assert done and max(done) < 6, f"the run should have been killed mid-way, checkpoints: {done}"
    # a plain (unsharded) run cannot read the shards: one line saying how to resume it
    with pytest.raises(NtpRlError, match="sharded .FSDP. checkpoint.*FSDP launch config, on any number of processes"):
        Trainer(load_train_config(overrides=[*BASE, "data.batch_size=4", f"out_dir={cut}", "resume=latest"]))
    run(fsdp_cmd(tmp_path, 1, *BASE, "data.batch_size=4", f"out_dir={cut}", "resume=latest"), env=ENV)
    a, b = rows(runs/"fsdp2"), rows(cut)
    assert sorted(b) == [1, 2, 3, 4, 5, 6]  # each step once
    assert_close(a, b, ["loss"], range(1, 7))
    assert_close(a, b, ["grad_norm"], range(1, 7), GRAD_TOL)
    last = checkpoints(cut)[-1]
    st = checkpoint_state(last)
    assert st["processes"] == 1 and st["history"][-1]["changed"]["data.batch_size"] == [2, 4]
    assert len(list((last/"pytorch_model_fsdp_0").glob("*.distcp"))) == 1  # re-sharded for one process

def test_quietstar_fsdp_matches_one_process(tmp_path):
    "Quiet-STaR's mixing head and markers are sharded in the root unit: every loss part and the saved head match."
    run(fsdp_cmd(tmp_path, 2, *QS, "data.batch_size=2", f"out_dir={tmp_path/'two'}"), env=ENV)
    one_process(tmp_path/"one", *QS, "data.batch_size=4")
    a, b = rows(tmp_path/"one"), rows(tmp_path/"two")
    assert sorted(a) == sorted(b) == [1, 2, 3]
    assert_close(a, b, ["loss", "nll_base", "nll_mixed", "nll_thought", "mix_weight"], [1, 2, 3])
    assert_close(a, b, ["grad_norm"], [1, 2, 3], GRAD_TOL)
    from ntp_rl.thoughts import load_thinking_model
    h1, h2 = [load_thinking_model(checkpoints(tmp_path/x)[-1]/"model", device="cpu") for x in ("one", "two")]
    # Adam turns round-off in a near-zero gradient into a step of up to objective_lr (1e-3): weights agree to that,
    # the head's outputs, the learned START/END rows (gathered from their shards) and the LM much closer
    w1, w2 = h1.head.state_dict(), h2.head.state_dict()
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-3
    x = torch.randn(8, 2 * h1.head.d_model, generator=torch.Generator().manual_seed(0))
    assert (h1.head.mlp(x) - h2.head.mlp(x)).abs().max().item() < 1e-3
    e1, e2 = (h.model.get_input_embeddings().weight[[h.marks.start, h.marks.end]] for h in (h1, h2))
    assert (e1 - e2).abs().max().item() < 1e-4
    s1, s2 = h1.model.state_dict(), h2.model.state_dict()
    assert max((s1[k] - s2[k]).abs().max().item() for k in s1) < 1e-4
    assert abs(a[3]["mix_weight"]) > 0  # the head moved off its zero start

FAKE_SRUN = """#!/bin/bash
# stands in for SLURM's srun inside an allocation of $SLURM_NNODES nodes: one copy of the command per node, each with the
# variables srun sets for its task (this machine plays every node)
while [[ $1 == -* ]]; do shift; done
pids=()
for ((i = 0; i < SLURM_NNODES; i++)); do SLURM_NODEID=$i SLURM_PROCID=$i SLURM_LOCALID=0 "$@" & pids+=($!); done
rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; exit $rc
"""
FAKE_SCONTROL = """#!/bin/bash
# `scontrol show hostnames <nodelist>`: every node of the allocation is this machine
for ((i = 0; i < SLURM_NNODES; i++)); do echo 127.0.0.1; done
"""

def test_multinode_sbatch_runs_as_two_nodes(runs, tmp_path):
    "ntp_rl_run --slurm writes a 2-node FSDP script; run whole with SLURM's variables, its loss curve is the 1-node one's."
    bin_ = Path(sys.executable).parent
    overrides = " ".join([*BASE, "data.batch_size=2"])
    spec = tmp_path/"train_2nodes.yaml"
    spec.write_text(yaml.safe_dump(dict(notebook=str(ROOT/"tests/fixtures/train_run.ipynb"), tag="2nodes",
                                        parameters=dict(overrides=overrides),
                                        slurm=dict(nodes=2, gpus=1, cpus=1, activate="true", launch_config=str(FSDP_CPU)))))
    env = dict(ENV, PATH=f"{bin_}:{os.environ['PATH']}")
    r = subprocess.run([str(bin_/"ntp_rl_run"), str(spec), "--slurm", "--out-root", str(tmp_path/"runs")], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    script = next((tmp_path/"runs/slurm").glob("*.sbatch"))
    s = script.read_text()
    assert "#SBATCH --nodes=2" in s and "#SBATCH --ntasks-per-node=1" in s and "--ntasks=1" not in s
    launch = [l for l in s.splitlines() if l.startswith("srun ")]
    assert len(launch) == 1 and all(f in launch[0] for f in (
        f"accelerate launch --no_python --config_file {FSDP_CPU} --num_machines $SLURM_NNODES --machine_rank $SLURM_NODEID",
        "--num_processes $((1 * SLURM_NNODES)) --main_process_ip $MASTER_ADDR --main_process_port $MASTER_PORT"))
    fake = tmp_path/"fake_slurm"; fake.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)): (fake/name).write_text(text); (fake/name).chmod(0o755)
    t = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                       env=dict(env, PATH=f"{fake}:{env['PATH']}", SLURM_ARRAY_TASK_ID="0", SLURM_NNODES="2",
                                SLURM_JOB_NODELIST="node[0-1]", SLURM_CPUS_PER_TASK="1", MASTER_PORT=str(free_port())))
    run_dir = next(d for d in (tmp_path/"runs").iterdir() if d.name != "slurm")
    logs = "".join(p.read_text()[-1500:] for p in run_dir.glob("run*.log"))
    assert t.returncode == 0, t.stdout[-1500:] + t.stderr[-3000:] + logs
    m = json.loads((run_dir/"metrics.json").read_text())
    assert m["world_size"] == 2 and (run_dir/"train_run.rank1.ipynb").exists()  # the second "node" ran its own process
    a, b = rows(runs/"one"), rows(run_dir/"train")
    assert sorted(b) == [1, 2, 3, 4, 5, 6]
    assert_close(a, b, ["loss", "lr"], range(1, 7))
    assert_close(a, b, ["grad_norm"], range(1, 7), GRAD_TOL)

def test_deepspeed_zero2_config_fits_accelerates_schema(tmp_path):
    """DeepSpeed installs without CUDA, but accelerate 1.15 runs it on GPUs only, so here the config is checked, not run
    (benchmarks/gpu_check.sh runs it): accelerate reads it, builds ZeRO-2's JSON from it, and the trainer fills the batch."""
    from types import SimpleNamespace
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin, DistributedType
    from ntp_rl.trainer import TrainConfig, fill_deepspeed
    c = load_config_from_file(str(ROOT/"configs/accelerate/deepspeed_zero2.yaml"))
    assert c.distributed_type == DistributedType.DEEPSPEED and c.mixed_precision == "bf16"
    plugin = DeepSpeedPlugin(**c.deepspeed_config)
    ds = plugin.deepspeed_config
    assert ds["zero_optimization"]["stage"] == 2 and ds["zero_optimization"]["offload_optimizer"]["device"] == "none"
    assert ds["gradient_clipping"] == TrainConfig().max_grad_norm  # DeepSpeed clips itself: the same value as the trainer
    assert plugin.is_auto("train_micro_batch_size_per_gpu")  # accelerate would stop in prepare without fill_deepspeed
    fill_deepspeed(SimpleNamespace(distributed_type="DEEPSPEED", state=SimpleNamespace(deepspeed_plugin=plugin)),
                   load_train_config(overrides=["data.batch_size=3"]))
    assert ds["train_micro_batch_size_per_gpu"] == 3
    bad = tmp_path/"bad.yaml"  # the check can fail: a misspelt key is refused by accelerate's schema
    bad.write_text((ROOT/"configs/accelerate/deepspeed_zero2.yaml").read_text().replace("zero_stage:", "zero_stag:"))
    with pytest.raises(TypeError): DeepSpeedPlugin(**load_config_from_file(str(bad)).deepspeed_config)

def test_quietstar_sampled_thoughts_fsdp_equals_ddp(tmp_path):
    """Sampled thoughts (K=2, REINFORCE) differ between 1 and 2 processes (each samples for its own half batch), so
    FSDP is compared with DDP on the same 2 processes: the same samples, the same losses."""
    sampled = [a for a in QS if not a.startswith(("objective_args.thought.n_thoughts", "objective_args.thought_source", "max_steps"))]
    sampled += ["objective_args.thought.n_thoughts=2", "objective_args.n_positions=6", "max_steps=2", "data.batch_size=2"]
    run(fsdp_cmd(tmp_path, 2, *sampled, f"out_dir={tmp_path/'fsdp'}"), env=ENV)
    ddp = fsdp_cmd(tmp_path, 2, *sampled, f"out_dir={tmp_path/'ddp'}")
    ddp[ddp.index(str(FSDP_CPU))] = str(ROOT/"configs/accelerate/cpu_ddp.yaml")
    run(ddp, env=ENV)
    a, b = rows(tmp_path/"ddp"), rows(tmp_path/"fsdp")
    assert sorted(a) == sorted(b) == [1, 2]
    assert_close(a, b, ["loss", "nll_base", "nll_mixed", "nll_thought", "policy", "reward_mean", "thought_entropy"], [1, 2])
    assert a[2]["reward_std"] > 0  # the K thoughts differed: sampled, not filler
