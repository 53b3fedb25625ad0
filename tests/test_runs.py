"""ntp_rl.runs end to end: sweeps, parameter checks, real papermill runs (one failing among three), metrics collection,
SLURM scripts (text, and one task executed locally), accelerate launch with 2 processes, the main job on the quick start."""
import json, os, shutil, subprocess, sys
from pathlib import Path
import pandas as pd, pytest, yaml
from ntp_rl.core import NtpRlError
from ntp_rl.runs import *

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT/"tests/fixtures/tiny_run.ipynb"
BIN = Path(sys.executable).parent

def cli(name, *args, cwd=ROOT, env=None, timeout=600):
    "Run an installed console script (ntp_rl_run, ntp_rl_collect, ntp_rl_main) as a user would."
    e = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", **(env or {}))
    return subprocess.run([str(BIN/name), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=e, timeout=timeout)

def write(path, text):
    path.write_text(text); return path

def test_sweep_expansion():
    runs = expand_sweep(dict(scale=2.0), {"grid": {"x": [1, 2, 3], "name": ["a", "b"]}}, tag="g")
    assert len(runs) == 6 and len({t for t, _ in runs}) == 6
    assert runs[0] == ("g_x=1_name=a", dict(scale=2.0, x=1, name="a"))
    assert runs[-1][1] == dict(scale=2.0, x=3, name="b")
    lst = expand_sweep(dict(x=1), {"list": [{"scale": 1e-4}, {"x": 2, "fail": True}]})
    assert lst == [("main_scale=0.0001", dict(x=1, scale=1e-4)), ("main_x=2_fail=True", dict(x=2, fail=True))]
    with pytest.raises(NtpRlError, match="grid or list|sweep must be"): expand_sweep({}, {"random": {"x": [1]}})

def test_yaml_sweep_reads_scientific_floats(tmp_path):
    spec = write(tmp_path/"s.yaml", f"notebook: {TINY}\nsweep:\n  grid: {{scale: [1e-4, 3.0e-4]}}\n")
    b = load_batch(spec)
    assert [r.params["scale"] for r in b.runs] == [1e-4, 3e-4] and b.name == "s"

def test_parameter_validation(tmp_path):
    spec = write(tmp_path/"typo.yaml", f"notebook: {TINY}\nparameters: {{x: 1, sclae: 2.0}}\n")
    with pytest.raises(NtpRlError, match=r"no parameter 'sclae'; valid parameters: x \(int, default 2\), scale \(float"):
        load_batch(spec)
    spec = write(tmp_path/"type.yaml", f"notebook: {TINY}\nsweep:\n  list: [{{x: 1}}, {{x: '2'}}]\n")
    with pytest.raises(NtpRlError, match="x='2' is a str, but tiny_run.ipynb expects int"): load_batch(spec)
    with pytest.raises(NtpRlError, match="do not set out_dir"):
        load_batch(write(tmp_path/"o.yaml", f"notebook: {TINY}\nparameters: {{out_dir: /x}}\n"))
    with pytest.raises(NtpRlError, match="unknown key 'parameter'"):
        load_batch(write(tmp_path/"k.yaml", f"notebook: {TINY}\nparameter: {{x: 1}}\n"))
    # the CLI: one line, exit 2, and nothing created
    r = cli("ntp_rl_run", tmp_path/"type.yaml", "--out-root", tmp_path/"runs")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: parameter x='2' is a str") and "valid parameters" in r.stderr
    assert not (tmp_path/"runs").exists()

def test_dry_run_executes_nothing(tmp_path):
    spec = write(tmp_path/"d.yaml", f"notebook: {TINY}\nsweep:\n  grid: {{x: [1, 2]}}\n")
    r = cli("ntp_rl_run", spec, "--dry-run", "--out-root", tmp_path/"runs")
    assert r.returncode == 0 and "2 run(s) would execute" in r.stdout and "tiny_run_main_x=2" in r.stdout, r.stderr
    assert not (tmp_path/"runs").exists()

@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    "Three real papermill runs of the tiny notebook through the CLI, the middle one failing."
    d = tmp_path_factory.mktemp("three")
    spec = write(d/"three.yaml", f"notebook: {TINY}\ntag: t\nparameters: {{scale: 2.0}}\n"
                                 "sweep:\n  list: [{x: 1}, {x: 2, fail: true}, {x: 3}]\n")
    r = cli("ntp_rl_run", spec, "--out-root", d/"runs")
    return d/"runs", r

def test_one_failing_run_among_three(three_runs):
    runs, r = three_runs
    assert r.returncode == 2, r.stderr[-3000:]
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("error: 1 of 3 runs failed:") and "t_x=2_fail=True" in err and "asked to fail" in err, err
    assert "3/3" in r.stderr  # the progress bar went across all runs
    dirs = sorted(runs.iterdir())
    assert [p.name[11:] for p in dirs] == ["tiny_run_t_x=1", "tiny_run_t_x=2_fail=True", "tiny_run_t_x=3"]
    ok1, bad, ok3 = dirs
    assert json.loads((ok1/"metrics.json").read_text())["y"] == 2.0
    assert json.loads((ok3/"metrics.json").read_text())["y"] == 6.0  # the run after the failure still ran
    assert not (bad/"metrics.json").exists()
    nb = json.loads((bad/"tiny_run.ipynb").read_text())  # the partial notebook holds the error
    assert any(o.get("ename") == "ValueError" for c in nb["cells"] for o in c.get("outputs", []))
    assert "y = 4.0" in (bad/"run.log").read_text() and "asked to fail" in (bad/"run.log").read_text()
    p = yaml.safe_load((ok3/"params.yaml").read_text())
    assert p == dict(scale=2.0, x=3, out_dir=str(ok3))  # the runner passed the run folder as out_dir

def test_collect_metrics(three_runs, tmp_path):
    runs, _ = three_runs
    df = collect_metrics([runs])
    assert list(df.columns) == ["run", "notebook", "x", "y", "x2", "name", "world_size"]  # only x varies among params
    assert df.x.tolist() == [1, 3] and df.y.tolist() == [2.0, 6.0]
    r = cli("ntp_rl_collect", runs, "--out", tmp_path/"c")
    assert r.returncode == 0, r.stderr
    assert "tiny_run_t_x=3" in r.stdout
    csv = pd.read_csv(tmp_path/"c/metrics.csv")
    assert len(csv) == 2 and csv.x2.tolist() == [1, 9]
    assert (tmp_path/"c/metrics.md").read_text().startswith("| run")
    assert (tmp_path/"c/metrics.png").stat().st_size > 5000
    assert cli("ntp_rl_collect", tmp_path/"c").returncode == 2  # no metrics.json there: a one-line error

def test_slurm_script(tmp_path):
    spec = write(tmp_path/"s.yaml", f"notebook: {TINY}\ntag: s\ntimeout: 900\n"
                 "slurm: {partition: from-yaml, cpus: 8, mem: 32G, time: '02:00:00', modules: [cuda/12.4],"
                 " env: {HF_HOME: /scratch/hf}}\nsweep:\n  grid: {x: [1, 2, 3]}\n")
    r = cli("ntp_rl_run", spec, "--slurm", "--out-root", tmp_path/"runs", "--partition", "gpu", "--account", "lab",
            "--gpus", "2", "--max-parallel", "2", "--activate", "source /opt/env/bin/activate")
    assert r.returncode == 0, r.stderr
    script = next((tmp_path/"runs/slurm").glob("*_s.sbatch"))
    assert f"sbatch {script}" in r.stdout
    s = script.read_text()
    for line in ["#SBATCH --array=0-2%2", "#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --gres=gpu:2",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32G", "#SBATCH --time=02:00:00",
                 f"#SBATCH --output={tmp_path/'runs/slurm/logs'}/%A_%a.out", "module load cuda/12.4",
                 "source /opt/env/bin/activate", "export HF_HOME=/scratch/hf", f"cd {ROOT}"]:
        assert line in s.splitlines(), (line, s)
    assert "accelerate launch --no_python --multi_gpu --num_machines 1 --num_processes 2" in s
    assert "ntp_rl_run --execute \"$RUN\" --timeout 900" in s
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    dirs = sorted(p for p in (tmp_path/"runs").iterdir() if p.name != "slurm")
    assert len(dirs) == 3 and all((d/"run.yaml").exists() and not (d/"metrics.json").exists() for d in dirs)
    # nothing about a cluster is assumed when nothing is given
    b = load_batch(write(tmp_path/"plain.yaml", f"notebook: {TINY}\n"))
    plain = slurm_script([tmp_path/"x"], slurm_config(b.slurm), ROOT, tmp_path)
    assert not any(k in plain for k in ("--partition", "--account", "--gres", "module load", "accelerate"))
    # --dry-run prints the script and writes nothing
    r = cli("ntp_rl_run", tmp_path/"plain.yaml", "--slurm", "--dry-run", "--out-root", tmp_path/"dry")
    assert r.returncode == 0 and "#SBATCH --array=0-0" in r.stdout and not (tmp_path/"dry").exists()

def test_slurm_task_runs_locally(tmp_path):
    "Execute array task 1 of a generated script with bash, as SLURM would (sbatch itself is not needed)."
    spec = write(tmp_path/"s.yaml", f"notebook: {TINY}\nsweep:\n  grid: {{x: [1, 7]}}\n")
    r = cli("ntp_rl_run", spec, "--slurm", "--out-root", tmp_path/"runs", "--activate", "true")
    assert r.returncode == 0, r.stderr
    script = next((tmp_path/"runs/slurm").glob("*.sbatch"))
    t = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", SLURM_ARRAY_TASK_ID="1"))
    assert t.returncode == 0, t.stderr[-2000:]
    done = [d for d in (tmp_path/"runs").iterdir() if (d/"metrics.json").exists()]
    assert [d.name[11:] for d in done] == ["tiny_run_main_x=7"]
    assert json.loads((done[0]/"metrics.json").read_text())["x2"] == 49

def test_accelerate_launch_two_processes(tmp_path):
    "The multi-GPU path on CPU: 2 processes each execute the notebook; rank 0 owns the main files and metrics."
    run = Run(TINY, dict(x=4), "acc")
    d = prepare_run(run, tmp_path)
    e = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    r = subprocess.run([str(BIN/"accelerate"), "launch", "--no_python", "--multi_gpu", "--num_machines", "1",
                        "--num_processes", "2", "--main_process_port", "29613", "ntp_rl_run", "--execute", str(d)],
                       capture_output=True, text=True, env=e, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((d/"metrics.json").read_text())["world_size"] == 2
    assert (d/"tiny_run.ipynb").exists() and (d/"tiny_run.rank1.ipynb").exists()
    assert "rank 1 of 2" in (d/"run.rank1.log").read_text()

def test_main_job_quickstart(tmp_path):
    "The main job's runner on the real quick start (SmolLM2-135M) with CI-sized parameters: summary names every file."
    write(tmp_path/"qs.yaml", "notebook: nbs/experiments/quickstart.ipynb\ntag: ci\n"
                              "parameters: {window: 64, n_windows: 2, batch_size: 2}\n")
    write(tmp_path/"tiny.yaml", f"notebook: {TINY}\ntag: after\n")
    steps = write(tmp_path/"main.yaml", "budget_seconds: 600\nsteps:\n  - qs.yaml\n  - tiny.yaml\n"
                                        "open_first:\n  - {step: qs.yaml, file: perplexity.png, what: the plot}\n")
    r = cli("ntp_rl_main", steps, "--out-root", tmp_path/"runs")
    assert r.returncode == 0, r.stderr[-3000:]
    qs = next((tmp_path/"runs").glob("*_quickstart_ci"))
    m = json.loads((qs/"metrics.json").read_text())
    assert m["model"] == "smollm2-135m" and 1 < m["ppl_gsm"] < 60 and 1 < m["ppl_wiki"] < 100, m
    for f in ["quickstart.ipynb", "params.yaml", "run.yaml", "run.log", "metrics.json", "perplexity.png"]:
        assert str(qs/f) in r.stdout, (f, r.stdout)
    assert "main job summary" in r.stdout and "budget 600 s" in r.stdout and "tiny_run_after" in r.stdout
    # it ends with the files to open first, and its log is quiet: step lines and progress bars, no kernel warnings
    assert r.stdout.rstrip().endswith(f"{qs/'perplexity.png'}  (the plot)"), r.stdout[-500:]
    assert "[1/2] qs.yaml" in r.stderr and "[2/2] tiny.yaml" in r.stderr and "1/1" in r.stderr
    assert "WARNING" not in r.stderr.upper() and "without encryption" not in r.stderr, r.stderr[-2000:]
    # a failing step stops the job and names what did not run
    write(tmp_path/"bad.yaml", f"notebook: {TINY}\ntag: bad\nparameters: {{fail: true}}\n")
    steps = write(tmp_path/"main2.yaml", "steps: [bad.yaml, tiny.yaml]\n")
    r = cli("ntp_rl_main", steps, "--out-root", tmp_path/"runs2")
    assert r.returncode == 2 and "step bad.yaml failed" in r.stderr and "not run: tiny.yaml" in r.stderr, r.stderr[-2000:]
    assert not list((tmp_path/"runs2").glob("*_after"))

def test_repo_main_job_is_valid():
    "papermill_runs/main.yaml and every step it lists parse and pass the parameter checks."
    r = cli("ntp_rl_main", "--dry-run")
    assert r.returncode == 0 and "quickstart.yaml:" in r.stdout, r.stderr
