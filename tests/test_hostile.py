"""Hostile input to every console command, as a careless or hostile user gives it: bad files x the commands that read data,
bad values x every kind of config field, broken run folders x every reader. Each case must exit with status 2, print one
line on stderr naming the culprit and no traceback, and leave its output location unchanged or absent.
Then the silent wrong results: stale data, a resume with changed settings, a stale checkpoint branch."""
import errno, json, os, shutil, socket, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path
import pytest
import ntp_rl.cli as cli
from ntp_rl.core import NtpRlError, error_message

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["model.name_or_path=tiny-llama", "model.device=cpu", "data.corpus=verne", "data.window=32", "data.batch_size=4",
         "lr=1e-3", "warmup_steps=0", "max_steps=2", "save_every=1", "keep_last=5"]
NB = ROOT/"tests"/"fixtures"/"tiny_run.ipynb"
RO = "/sys/ntp_rl_hostile"  # a location nobody, root included, can create (EPERM)

# ------------------------------------------------------------------ fixtures: hostile files and broken run folders
@pytest.fixture(scope="module")
def d(tmp_path_factory):
    "A folder of hostile files."
    d = tmp_path_factory.mktemp("hostile")
    (d/"adir").mkdir()
    (d/"latin1.txt").write_bytes("café au lait\n".encode("latin-1"))
    (d/"latin1.yaml").write_bytes("lr: caf\xe9\n".encode("latin-1"))
    (d/"empty.txt").write_text("")
    (d/"blank.txt").write_text("\n\n   \n")
    (d/"one.txt").write_text("hi\n")
    (d/"bad.jsonl").write_text('{"text": "fine"}\n{"text": "broken\n')
    (d/"nofield.jsonl").write_text('{"body": "a document"}\n')
    (d/"list.json").write_text("[1, 2, 3]")
    (d/"bad.parquet").write_bytes(b"PAR1 not really parquet")
    (d/"t.csv").write_text("text\nhello\n")
    (d/"bad.yaml").write_text("lr: [1, 2\n")
    (d/"list.yaml").write_text("- lr: 1\n")
    (d/"lrabc.yaml").write_text("model: {name_or_path: tiny-llama, device: cpu}\nlr: abc\n")
    (d/"train5.yaml").write_text("train: 5\n")
    nb = f"notebook: {NB}\n"
    for name, text in {"run_timeout": nb + "timeout: abc\n", "run_params": nb + "parameters: [1, 2]\n",
                       "run_gpus": nb + "slurm: {gpus: 1.5}\n", "run_time": nb + "slurm: {time: soon}\n",
                       "run_nonb": "parameters: {a: 1}\n", "run_unknown": nb + "paramters: {a: 1}\n",
                       "run_missingnb": f"notebook: {d/'nope.ipynb'}\n", "run_corruptnb": f"notebook: {d/'corrupt.ipynb'}\n",
                       "run_param_type": nb + "parameters: {x: abc}\n", "run_steps": "steps: [a.yaml]\n",
                       "main_budget": "steps: [ok.yaml]\nbudget_seconds: abc\n", "main_steps": "steps: 5\n",
                       "main_badstep": "steps: [ok.yaml, run_timeout.yaml]\n", "main_unknown": "steps: [ok.yaml]\nstep: 3\n",
                       "ok": nb, "cur_stages": "stages: 5\n", "cur_noname": "stages: [{max_steps: 2}]\n",
                       "cur_unknown": "stages: [{name: a}]\nbase_: {}\n", "cur_steps0": "stages: [{name: x, max_steps: 0}]\n"}.items():
        (d/f"{name}.yaml").write_text(text)
    (d/"corrupt.ipynb").write_text("{not json")
    return d

def _link_copy(src:Path, dst:Path) -> Path:
    "A copy made of hard links (cheap); break files with `_break`, which replaces instead of writing through the link."
    shutil.copytree(src, dst, copy_function=os.link)
    return dst

def _break(path:Path, text:str):
    path.unlink(missing_ok=True); path.write_text(text)

@pytest.fixture(scope="module")
def b(tmp_path_factory):
    "Broken run folders of every kind a reader meets: entropy folders, training runs, thinking/budget models, papermill runs."
    from ntp_rl.entropy import EntropyConfig, run_entropy
    from ntp_rl.trainer import checkpoints, load_train_config, train
    from ntp_rl.core import load_model
    from ntp_rl.thoughts import ThoughtConfig, make_thinker, save_thinking_model
    from ntp_rl.budget import BudgetConfig, new_budget_values, save_budget_model
    b = tmp_path_factory.mktemp("broken")
    run_entropy(EntropyConfig(model="tiny-llama", data="verne", n_docs=3, window=16, device="cpu", out=str(b/"ent"),
                              plot_rows=1000), progress=False)
    _break(_link_copy(b/"ent", b/"ent_badshard")/"shard-00000.parquet", "not parquet")
    _break(_link_copy(b/"ent", b/"ent_badvocab")/"vocab.json", "[1, 2")
    (_link_copy(b/"ent", b/"ent_novocab")/"vocab.json").unlink()
    _break(_link_copy(b/"ent", b/"ent_badrun")/"run.json", "{")
    _break(_link_copy(b/"ent", b/"ent_badsummary")/"summary.json", "[]]")
    train(load_train_config(overrides=[*TRAIN, f"out_dir={b/'train'}"]))
    last = lambda run: checkpoints(run)[-1]
    _break(last(_link_copy(b/"train", b/"train_badstate"))/"trainer_state.json", '{"step": ')
    _break(last(_link_copy(b/"train", b/"train_badconfig"))/"config.yaml", "lr: [\n")
    (last(_link_copy(b/"train", b/"train_nostate"))/"trainer_state.json").unlink()
    _break(_link_copy(b/"train", b/"train_badmetrics")/"metrics.jsonl", '{"step": 1, "loss": 2.0}\nnot json\n')
    model, tok = load_model("tiny-llama", device="cpu")
    th = make_thinker(model, tok, ThoughtConfig(thought_len=4))
    save_thinking_model(th, b/"thinking_bad"); _break(b/"thinking_bad"/"thoughts.json", '{"config": ')
    save_thinking_model(th, b/"thinking_keys"); _break(b/"thinking_keys"/"thoughts.json", '{"config": {}}')
    bc = BudgetConfig(budgets=(0, 2, 4), lookaheads=(1, 2))
    save_budget_model(th, new_budget_values(th.model, bc), bc, b/"budget_bad"); _break(b/"budget_bad"/"budget.json", "nope")
    for name, metrics, runyaml in [("runs_badmetrics", "{broken", None), ("runs_badrunyaml", '{"loss": 1.0}', "parameters: [\n"),
                                   ("runs_nonumeric", '{"note": "text only"}', None)]:
        r = b/name/"2026-01-02_x_main"; r.mkdir(parents=True)
        (r/"metrics.json").write_text(metrics)
        if runyaml: (r/"run.yaml").write_text(runyaml)
    (b/"run_badyaml").mkdir(); (b/"run_badyaml"/"run.yaml").write_text("notebook: [\n")
    (b/"run_noparams").mkdir(); (b/"run_noparams"/"run.yaml").write_text(f"notebook: {NB}\n")
    return b

# ------------------------------------------------------------------ the table
T = [f"out_dir={{o}}", *TRAIN]  # a training command's arguments (out_dir is the output location)
E = ["--model", "tiny-llama", "--device", "cpu", "--window", "16", "--quiet", "--out", "{o}"]  # entropy
K = ["--model", "tiny-llama", "--device", "cpu", "--max-new-tokens", "2"]  # think
CASES = [  # (id, command, arguments, culprit named in the error line, output location)
    # bad files x the commands that read data
    *[(f"entropy-{n}", "ntp_rl_entropy", [*E, "--data", f"{{d}}/{n}"], c, "{o}") for n, c in [
        ("missing.txt", "no such file"), ("adir", "adir is a folder"), ("latin1.txt", "not valid UTF-8 (byte 0xe9"),
        ("empty.txt", "empty.txt is empty"), ("blank.txt", "holds no text"), ("one.txt", "one.txt: no position to predict"),
        ("bad.jsonl", "bad.jsonl line 2 is not valid JSON"), ("nofield.jsonl", "no field 'text'; set text_field to one of: body"),
        ("list.json", "list.json has no field 'text'"), ("bad.parquet", "could not read"), ("t.csv", "unsupported file type '.csv'")]],
    *[(f"train-{n}", "ntp_rl_train", [*T, f"data.corpus={{d}}/{n}"], c, "{o}") for n, c in [
        ("missing.txt", "no such file"), ("adir", "adir is a folder"), ("latin1.txt", "not valid UTF-8"),
        ("empty.txt", "empty.txt is empty"), ("blank.txt", "holds no text"), ("one.txt", "val_frac"),
        ("bad.jsonl", "bad.jsonl line 2"), ("nofield.jsonl", "no field 'text'"), ("bad.parquet", "could not read"),
        ("t.csv", "unsupported file type")]],
    ("entropy-unknown-corpus", "ntp_rl_entropy", [*E, "--data", "wki"], "unknown corpus 'wki'", "{o}"),
    ("train-unknown-corpus", "ntp_rl_train", [*T, "data.corpus=wiki+gsn"], "unknown corpus 'gsn'", "{o}"),
    # bad values x config field types: entropy command
    *[(f"entropy-{'-'.join(a).strip('-')}", "ntp_rl_entropy", [*E, "--data", "verne", *a], c, "{o}") for a, c in [
        (["--window", "64.5"], "--window: invalid int value: '64.5'"), (["--top-k", "100000"], "top_k=100000"),
        (["--top-k", "0"], "top_k=0"), (["--device", "gpu"], "device='gpu'"), (["--device", "cuda:99"], "cuda:99"),
        (["--unit", "furlongs"], "unit='furlongs'"), (["--boundaries", "respect"], "boundaries='respect'"),
        (["--batch-size", "0"], "batch_size=0"), (["--n-docs", "-1"], "n_docs=-1"), (["--dtype", "float64"], "dtype='float64'"),
        (["--shard-windows", "0"], "shard_windows=0"), (["--plot-rows", "0"], "plot_rows=0"), (["--window", "1"], "window=1"),
        (["--window", "5000"], "window=5000 is longer than the model's context"), (["--model", "./no-such-model"], "no-such-model"),
        (["--bogus"], "unrecognized arguments: --bogus"), (["--window"], "--window: expected one argument")]],
    ("entropy-out-is-file", "ntp_rl_entropy", [*E[:-1], "{d}/latin1.txt", "--data", "verne"], "latin1.txt is a file", "{d}/latin1.txt"),
    ("entropy-out-readonly", "ntp_rl_entropy", [*E[:-1], RO, "--data", "verne"], RO, RO),
    ("entropy-out-foreign", "ntp_rl_entropy", [*E[:-1], "{d}", "--data", "verne"], "not an entropy folder", "{d}"),
    ("entropy-out-other-run", "ntp_rl_entropy", [*E[:-1], "{b}/ent", "--data", "verne", "--n-docs", "4"], "different run", "{b}/ent"),
    # bad values x config field types: training (int, float, non-finite, choice, device, mapping, list, bool, unknown, syntax)
    *[(f"train-{'-'.join(a)}", "ntp_rl_train", [*T, *a], c, "{o}") for a, c in [
        (["data.window=64.5"], "DataConfig.window=64.5 is a float"), (["lr=abc"], "TrainConfig.lr='abc' is a str"),
        (["lr=1e400"], "TrainConfig.lr=inf is not a finite number"), (["lr=-1"], "lr=-1"), (["max_steps=0"], "max_steps=0"),
        (["max_steps=abc"], "TrainConfig.max_steps='abc'"), (["schedule=foo"], "schedule='foo'"),
        (["data.boundaries=respect"], "boundaries='respect'"), (["model.device=gpu"], "ModelConfig.device='gpu'"),
        (["mixed_precision=fp8"], "mixed_precision='fp8'"), (["objective=dpo"], "objective='dpo'"),
        (["max_step=3"], "unknown TrainConfig fields ['max_step']"), (["noequals"], "'noequals' is not key=value"),
        (["data=wiki"], "TrainConfig.data='wiki'"), (["adam_betas=[0.9]"], "adam_betas=(0.9,)"),
        (["objective_args.T=4"], "not fields of NextTokenConfig"), (["warmup_steps=-1"], "warmup_steps=-1"),
        (["grad_accum=0"], "grad_accum=0"), (["keep_last=0"], "keep_last"), (["resume=/no/such/ckpt"], "/no/such/ckpt"),
        (["resume={d}/adir"], "is not a checkpoint folder"), (["init_from=/no/such"], "init_from='/no/such'"),
        (["lora_r=-1"], "lora_r=-1"), (["data.val_frac=1.5"], "val_frac"), (["data.n_docs=0"], "n_docs=0"),
        (["eval_windows=0"], "eval_windows=0"), (["model.name_or_path=./nope"], "'./nope' does not exist"),
        (["data.window=[1]"], "DataConfig.window=[1] is a list"), (["lr=[1"], "is not valid YAML"),
        (["objective=budget", "objective_args.budgets=abc"], "BudgetConfig.budgets='abc' is a str"),
        (["objective=budget", "objective_args.budgets=[0, 2.5]"], "BudgetConfig.budgets=[0, 2.5]; give whole numbers"),
        (["objective=quietstar", "objective_args.advantage=3"], "QuietStarConfig.advantage=3 is an int"),
        (["objective=quietstar", "objective_args.base_weight=yes"], "QuietStarConfig.base_weight='yes' is a str"),
        (["objective=quietstar", "data.window=1020"], "beyond the model's context")]],  # fails at step 1, after out_dir exists
    ("train-out-readonly", "ntp_rl_train", [*T, f"out_dir={RO}"], RO, RO),
    ("train-out-is-file", "ntp_rl_train", [*T, "out_dir={d}/latin1.txt"], "latin1.txt is a file", "{d}/latin1.txt"),
    *[(f"train-config-{n}", "ntp_rl_train", ["--config", f"{{d}}/{n}", "out_dir={o}"], c, "{o}") for n, c in [
        ("bad.yaml", "bad.yaml is not valid YAML (line 2"), ("latin1.yaml", "latin1.yaml is not valid UTF-8"),
        ("list.yaml", "must hold a mapping"), ("missing.yaml", "missing.yaml does not exist"), ("lrabc.yaml", "lr='abc'"),
        ("adir", "adir is a folder"), ("train5.yaml", "`train:` must hold a mapping")]],
    *[(f"curriculum-{n}", "ntp_rl_curriculum", ["--config", f"{{d}}/{n}.yaml"], c, None) for n, c in [
        ("missing", "missing.yaml does not exist"), ("cur_stages", "CurriculumConfig.stages=5 is an int"),
        ("cur_noname", "unique `name`"), ("cur_unknown", "unknown curriculum keys ['base_']"), ("cur_steps0", "stage 'x': max_steps=0"),
        ("latin1", "not valid UTF-8"), ("bad", "not valid YAML")]],
    # bad values: generation
    *[(f"think-{'-'.join(a).strip('-')[:40]}", "ntp_rl_think", [*K, *a], c, None) for a, c in [
        (["--max-new-tokens", "-5"], "max_new_tokens=-5"), (["--temperature", "-1"], "temperature=-1"),
        (["--thought-temperature", "-1"], "thought_temperature=-1"), (["--thought-len", "1"], "thought_len=1"),
        (["--device", "gpu"], "device='gpu'"), (["--model", "./nope"], "'./nope' does not exist"),
        (["--adaptive", "--lam", "-1"], "lam=-1"), (["--adaptive", "--thought-len", "4"], "--thought-len is for fixed thoughts"),
        (["--html", "x.html"], "--html needs --adaptive"), (["--prompt", ""], "the prompt is empty"),
        (["--prompt", "caf\udce9"], "--prompt is not valid UTF-8"), (["--adaptive", "--horizon", "2"], "--horizon is for fixed thoughts"),
        (["--thought-len", "1030"], "leave no room"), (["--max-new-tokens", "1020"], "prompt + max_new_tokens of at most"),
        (["--max-new-tokens", "2.5"], "invalid int value: '2.5'")]],
    ("think-html-folder", "ntp_rl_think", [*K, "--adaptive", "--html", "{d}/adir"], "adir is a folder", "{d}/adir"),
    ("think-thoughts-json", "ntp_rl_think", [*K, "--model", "{b}/thinking_bad"], "thoughts.json is not valid JSON", "{b}/thinking_bad"),
    ("think-thoughts-keys", "ntp_rl_think", [*K, "--model", "{b}/thinking_keys"], "lacks config, marks or head", "{b}/thinking_keys"),
    ("think-budget-json", "ntp_rl_think", [*K, "--adaptive", "--model", "{b}/budget_bad"], "budget.json is not valid JSON", "{b}/budget_bad"),
    # the viewer: bad values and broken entropy folders
    *[(f"view-{'-'.join(a).strip('-')[:40]}", "ntp_rl_view", a, c, None) for a, c in [
        (["--entropies", "{b}/ent", "--port", "70000"], "--port 70000"), (["--entropies", "{b}/ent", "--port", "-1"], "--port -1"),
        (["--entropies", "{b}/ent", "--n", "0"], "--n 0"), (["--entropies", "{b}/ent", "--vmax", "-1"], "vmax=-1"),
        (["--entropies", "{d}/latin1.txt"], "latin1.txt is a file"), (["--entropies", "{d}/missing"], "missing does not exist"),
        (["--entropies", "{d}/adir"], "holds no shard-*.parquet"), (["--entropies", "{b}/ent_badshard"], "not a readable entropy shard"),
        (["--entropies", "{b}/ent_badvocab"], "vocab.json is not valid JSON"), (["--entropies", "{b}/ent_novocab"], "vocab.json is missing"),
        (["--entropies", "{b}/ent_badrun"], "run.json is not valid JSON"), (["--entropies", "{b}/ent_badsummary"], "summary.json is not valid JSON")]],
    ("view-export-bad-sort", "ntp_rl_view", ["--entropies", "{b}/ent", "--export", "{o}/p.html", "--sort", "bogus"], "sort='bogus'", "{o}"),
    ("view-export-readonly", "ntp_rl_view", ["--entropies", "{b}/ent", "--export", f"{RO}/p.html"], RO, RO),
    # batch runs, collection, the main job
    *[(f"run-{n}", "ntp_rl_run", [f"{{d}}/{n}.yaml", "--out-root", "{o}"], c, "{o}") for n, c in [
        ("run_timeout", "timeout='abc'"), ("run_params", "parameters must be a mapping"), ("run_gpus", "gpus=1.5"),
        ("run_time", "slurm.time='soon'"), ("run_nonb", "names no notebook"), ("run_unknown", "unknown key 'paramters'"),
        ("run_missingnb", "nope.ipynb' does not exist"), ("run_corruptnb", "corrupt.ipynb is not a readable notebook"),
        ("run_param_type", "x='abc' is a str"), ("run_steps", "it is a main-job file"), ("latin1", "not valid UTF-8"),
        ("bad", "not valid YAML"), ("missing", "missing.yaml does not exist")]],
    ("run-gpus-float", "ntp_rl_run", ["{d}/ok.yaml", "--slurm", "--gpus", "1.5", "--out-root", "{o}"], "--gpus: invalid int value", "{o}"),
    ("run-no-spec", "ntp_rl_run", [], "give a parameter file", None),
    ("run-execute-not-prepared", "ntp_rl_run", ["--execute", "{d}/adir"], "holds no run.yaml", "{d}/adir"),
    ("run-execute-bad-yaml", "ntp_rl_run", ["--execute", "{b}/run_badyaml"], "run.yaml is not valid YAML", "{b}/run_badyaml"),
    ("run-execute-no-params", "ntp_rl_run", ["--execute", "{b}/run_noparams"], "lacks notebook, tag or parameters", "{b}/run_noparams"),
    ("run-execute-timeout", "ntp_rl_run", ["--execute", "{b}/run_noparams", "--timeout", "-5"], "timeout=-5", "{b}/run_noparams"),
    ("run-out-readonly", "ntp_rl_run", ["{d}/ok.yaml", "--out-root", RO], RO, RO),
    *[(f"collect-{n}", "ntp_rl_collect", [f"{{b}}/{n}", "--out", "{o}"], c, "{o}") for n, c in [
        ("runs_badmetrics", "metrics.json is not valid JSON"), ("runs_badrunyaml", "run.yaml is not valid YAML"),
        ("runs_nonumeric", "no numeric metrics")]],
    ("collect-no-metrics", "ntp_rl_collect", ["{d}/adir", "--out", "{o}"], "no metrics.json under", "{o}"),
    ("collect-missing", "ntp_rl_collect", ["{d}/missing", "--out", "{o}"], "is neither a folder nor a metrics.json", "{o}"),
    ("collect-out-readonly", "ntp_rl_collect", ["{b}/runs_nonumeric", "--out", RO], RO, RO),
    *[(f"main-{n}", "ntp_rl_main", [f"{{d}}/{n}.yaml", "--out-root", "{o}"], c, "{o}") for n, c in [
        ("main_budget", "budget_seconds='abc'"), ("main_steps", "needs `steps:`"),
        ("main_badstep", "main_badstep.yaml, step run_timeout.yaml: "), ("main_unknown", "unknown key 'step'"),
        ("missing", "missing.yaml does not exist")]],
    ("prepare-unknown-corpus", "ntp_rl_prepare", ["--corpus", "nope"], "unknown corpus 'nope'", None),
    # broken training runs x the trainer's readers
    *[(f"resume-{n}", "ntp_rl_train", [*TRAIN, f"out_dir={{b}}/{n}", "resume=latest", "max_steps=3"], c, f"{{b}}/{n}") for n, c in [
        ("train_badstate", "trainer_state.json is not valid JSON"), ("train_badconfig", "config.yaml is not valid YAML"),
        ("train_nostate", "trainer_state.json does not exist"), ("train_badmetrics", "metrics.jsonl line 2 is not a JSON object")]],
    ("resume-past-max-steps", "ntp_rl_train", [*TRAIN, "out_dir={b}/train", "resume=latest", "max_steps=1"], "past max_steps=1", "{b}/train"),
    ("resume-changed-lr", "ntp_rl_train", [*TRAIN, "out_dir={b}/train", "resume=latest", "lr=3e-3"], "lr=0.001 (requested 0.003)", "{b}/train"),
]

def visible_lines(err:str) -> list[str]:
    "The lines a terminal shows: a progress bar redrawn with carriage returns (and cleared) is not a line."
    return [l.split("\r")[-1] for l in err.split("\n") if l.split("\r")[-1].strip()]

def _state(p:Path):
    "What a location looks like: None if absent, else every file's (path, size, mtime)."
    if not p.exists(): return None
    if p.is_file(): return [("", p.stat().st_size, p.stat().st_mtime_ns)]
    return sorted((str(q.relative_to(p)), q.stat().st_size if q.is_file() else 0, q.stat().st_mtime_ns) for q in p.rglob("*"))

@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(case, d, b, tmp_path, capsys, monkeypatch):
    name, cmd, args, culprit, out = case
    monkeypatch.delenv("NTP_RL_DEBUG", raising=False)
    fill = lambda s: s.format(d=d, b=b, o=tmp_path/"out")
    args, out = [fill(a) for a in args], Path(fill(out)) if out else None
    before = _state(out) if out else None
    capsys.readouterr()
    with pytest.raises(SystemExit) as e: getattr(cli, cmd)(args)
    err = capsys.readouterr().err
    lines = visible_lines(err)
    assert e.value.code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert culprit in lines[0], lines[0]
    assert "Traceback" not in err
    if out: assert _state(out) in (before, None), f"{out} changed"

# ------------------------------------------------------------------ end to end: the installed commands, in a real process
def _cmd(name:str) -> list[str]:
    return [sys.executable, "-c", f"import sys; from ntp_rl.cli import {name}; sys.exit({name}())"]

def _env(**kw):
    return {**os.environ, "PYTHONPATH": str(ROOT), **kw}

def test_end_to_end_error_exit_code_and_debug(d, tmp_path, monkeypatch):
    "A real process: exit 2 and one line; with NTP_RL_DEBUG=1 (or --debug, in-process here) the traceback instead."
    args = ["--model", "tiny-llama", "--device", "cpu", "--data", str(d/"latin1.txt"), "--out", str(tmp_path/"o")]
    r = subprocess.run(_cmd("ntp_rl_entropy") + args, capture_output=True, text=True, env=_env(), cwd=ROOT)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "latin1.txt is not valid UTF-8" in r.stderr, r.stderr
    r = subprocess.run(_cmd("ntp_rl_train") + ["--config", str(d/"lrabc.yaml")], capture_output=True, text=True,
                       env=_env(NTP_RL_DEBUG="1"), cwd=ROOT)
    assert r.returncode == 1 and "Traceback" in r.stderr and "NtpRlError: TrainConfig.lr='abc'" in r.stderr, r.stderr[-500:]
    monkeypatch.delenv("NTP_RL_DEBUG", raising=False)
    with pytest.raises(NtpRlError, match="not valid UTF-8"): cli.ntp_rl_entropy(args + ["--debug"])
    assert os.environ.pop("NTP_RL_DEBUG") == "1"
    assert not (tmp_path/"o").exists()

COMMANDS = ["ntp_rl_prepare", "ntp_rl_entropy", "ntp_rl_view", "ntp_rl_think", "ntp_rl_train", "ntp_rl_curriculum",
            "ntp_rl_run", "ntp_rl_collect", "ntp_rl_main"]

@pytest.mark.parametrize("name", COMMANDS)
def test_help_is_fast_and_imports_no_torch(name, tmp_path):
    "`--help` answers in a fresh interpreter in well under a second, before torch or transformers are imported."
    code = (f"import sys, time; t = time.perf_counter(); from ntp_rl.cli import {name}\n"
            f"try: {name}(['--help'])\nexcept SystemExit as e: assert e.code == 0\n"
            "print('seconds', time.perf_counter() - t, [m for m in ('torch', 'transformers', 'pandas') if m in sys.modules])")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(NTP_RL_CACHE=str(tmp_path)),
                       cwd=tmp_path)
    wall = time.perf_counter() - t0
    assert r.returncode == 0 and "usage: " + name in r.stdout, r.stderr
    assert r.stdout.rstrip().endswith("[]"), r.stdout[-200:]  # nothing heavy imported
    assert wall < 1.0, f"{name} --help took {wall:.2f} s"
    assert not any(tmp_path.iterdir())  # ntp_rl_prepare --help prepared nothing

def test_error_message_kinds():
    "OS errors name the file and what to do; bugs are reported as bugs (exit 1), Ctrl-C as 130."
    code, msg = error_message(OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out"))
    assert code == 2 and msg == "/mnt/ro/out: Read-only file system; that file system is read-only; choose another location"
    assert error_message(IsADirectoryError(errno.EISDIR, "Is a directory", "x"))[1].endswith("give a file path")
    assert error_message(KeyboardInterrupt()) == (130, "interrupted")
    code, msg = error_message(ZeroDivisionError("division by zero"))
    assert code == 1 and "--debug" in msg and "\n" not in msg

def test_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch, capsys):
    "A full disk while the first files are written: one line, and neither a temporary file nor a half-made folder left."
    def full(fd): raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path/"o"
    with pytest.raises(SystemExit) as e:
        cli.ntp_rl_entropy(["--model", "tiny-llama", "--device", "cpu", "--data", "verne", "--n-docs", "2", "--window", "16",
                            "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "the disk is full" in err and err.count("\n") == 1, err
    assert not out.exists() and not list(tmp_path.rglob(".*tmp*"))

# ------------------------------------------------------------------ the viewer under bad requests
def test_viewer_bad_queries_and_idle_connections(b, capfd):
    "A bad sort or page is a 400 (no dropped connection, no traceback); CSP forbids framing; idle connections are closed."
    from ntp_rl.viewer import serve
    srv = serve(b/"ent", port=0, n=2, idle_timeout=0.5)
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        for q in ("/?sort=bogus", "/?sort=%00", "/?sort=mean_desc&sort=x", "/?page=x", "/?page=-1", "/?page=10000", "/?sort=mean_desc&page=1e3"):
            with pytest.raises(urllib.error.HTTPError) as e: urllib.request.urlopen(url + q, timeout=10)
            assert e.value.code == 400, q
        r = urllib.request.urlopen(url + "/?sort=mean_asc", timeout=10)
        assert r.status == 200 and "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        s = socket.create_connection(srv.server_address, timeout=5)  # connects, sends nothing
        t0 = time.time()
        assert s.recv(1) == b""  # the server hangs up on its own
        assert time.time() - t0 < 4
        s.close()
    finally:
        srv.shutdown(); srv.server_close()
    assert "Traceback" not in capfd.readouterr().err

# ------------------------------------------------------------------ silent wrong results
def test_stale_data_is_never_served(tmp_path):
    "New text under an unchanged mtime (cp -p, rsync -a, tar x): scoring reads what is on disk now, and records its sha256."
    from ntp_rl.entropy import EntropyConfig, load_entropies, run_entropy, run_info
    from ntp_rl.core import file_sha256
    t, ref = tmp_path/"t.txt", tmp_path/"ref"
    t.write_text("alpha beta gamma delta\n"); ref.write_text("x"); os.utime(ref, (1e9, 1e9)); os.utime(t, (1e9, 1e9))
    cfg = dict(model="tiny-llama", device="cpu", data=str(t), window=16, plot_rows=1000)
    run_entropy(EntropyConfig(out=str(tmp_path/"o1"), **cfg), progress=False)
    h1 = file_sha256(t)
    t.write_text("omega sigma kappa psi\n"); os.utime(t, (1e9, 1e9))  # same size, same mtime
    run_entropy(EntropyConfig(out=str(tmp_path/"o2"), **cfg), progress=False)
    assert "".join(load_entropies(tmp_path/"o1")["token"]) == "alpha beta gamma delta"
    assert "".join(load_entropies(tmp_path/"o2")["token"]) == "omega sigma kappa psi"
    assert run_info(tmp_path/"o1")["inputs"] == {str(t.resolve()): h1}
    assert run_info(tmp_path/"o2")["inputs"] == {str(t.resolve()): file_sha256(t)} != {str(t.resolve()): h1}

def test_training_records_inputs_and_refuses_changed_data_on_resume(tmp_path, capsys):
    "A checkpoint records the sha256 of its data; resuming after the data changed is refused and names the file."
    from ntp_rl.trainer import checkpoint_state, checkpoints, load_train_config, train
    data = tmp_path/"d.txt"
    data.write_text("\n\n".join(f"document number {i} says something about item {i * 7}." for i in range(40)))
    args = [*TRAIN, f"data.corpus={data}", "data.window=16", f"out_dir={tmp_path/'r'}"]
    train(load_train_config(overrides=args))
    st = checkpoint_state(checkpoints(tmp_path/"r")[-1])
    assert list(st["inputs"]) == [str(data.resolve())] and len(st["inputs"][str(data.resolve())]) == 64
    data.write_text(data.read_text().replace("item", "thing"))
    before = _state(tmp_path/"r")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e: cli.ntp_rl_train([*args, "resume=latest", "max_steps=3"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "the training data changed since checkpoint-000002" in err and "d.txt" in err, err
    assert _state(tmp_path/"r") == before

def test_resume_with_changed_settings(tmp_path, capsys):
    "Run-changing overrides are refused by name; allowed ones are applied and recorded, and the lr used is the lr recorded."
    import yaml
    from ntp_rl.trainer import checkpoint_state, checkpoints, load_train_config, read_metrics, train
    out = tmp_path/"r"
    args = [*TRAIN, f"out_dir={out}"]
    train(load_train_config(overrides=args))
    before = _state(out)
    capsys.readouterr()
    for over, named in [(["lr=3e-3"], "lr=0.001 (requested 0.003)"), (["data.batch_size=2"], "data.batch_size=4 (requested 2)"),
                        (["seed=1", "weight_decay=0.1"], "seed=0 (requested 1), weight_decay=0.001 (requested 0.1)"),
                        (["objective_args.x=1"], "not fields of NextTokenConfig")]:
        with pytest.raises(SystemExit) as e: cli.ntp_rl_train([*args, "resume=latest", "max_steps=3", *over])
        err = capsys.readouterr().err
        assert e.value.code == 2 and named in err and len(visible_lines(err)) == 1, err
        assert _state(out) == before  # nothing moved, nothing written
    res = train(load_train_config(overrides=[*args, "resume=latest", "max_steps=4", "log_every=2"]))
    assert res["steps"] == 4
    last = checkpoints(out)[-1]
    hist = checkpoint_state(last)["history"]
    assert [h["step"] for h in hist] == [2] and hist[0]["changed"] == {"log_every": [1, 2], "max_steps": [2, 4]}
    cfg = yaml.safe_load((last/"config.yaml").read_text())
    assert (cfg["max_steps"], cfg["log_every"], cfg["lr"]) == (4, 2, 1e-3)
    rows = [r for r in read_metrics(out) if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 4] and all(r["lr"] == cfg["lr"] for r in rows)  # constant schedule: lr as recorded
    n = len(read_metrics(out))
    again = train(load_train_config(overrides=[*args, "resume=latest", "max_steps=4", "log_every=2"]))
    assert again.get("finished_earlier") and len(read_metrics(out)) == n  # a finished run asked again appends nothing

_CRASH = {"at": None, "calls": 0}

def test_stale_branch_is_set_aside(tmp_path):
    "Resume from an earlier checkpoint, crash, resume=latest: it continues this run's branch, never the abandoned one."
    from ntp_rl.trainer import NextTokenObjective, checkpoints, checkpoint_state, load_train_config, read_metrics, register_objective, train
    class Crashing(NextTokenObjective):
        def loss(self, lm, batch, ro):
            _CRASH["calls"] += 1
            if _CRASH["at"] is not None and _CRASH["calls"] >= _CRASH["at"]: raise RuntimeError("simulated crash")
            return super().loss(lm, batch, ro)
    register_objective("crash-test", Crashing)
    out = tmp_path/"r"
    args = [*TRAIN, "objective=crash-test", f"out_dir={out}", "max_steps=4"]
    train(load_train_config(overrides=args))  # the earlier run: checkpoints 1..4
    straight = {r["step"]: r["loss"] for r in read_metrics(out) if "loss" in r}
    first = checkpoints(out)[0]
    _CRASH.update(at=2, calls=0)  # the new branch: step 2 runs, step 3 crashes
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(load_train_config(overrides=[*args, f"resume={first}", "max_steps=4"]))
    # the old checkpoint-3 and -4 are no longer reachable: latest is the new branch's checkpoint-2
    assert [p.name for p in checkpoints(out)] == ["checkpoint-000001", "checkpoint-000002"]
    hist = checkpoint_state(checkpoints(out)[-1])["history"][-1]
    aside = [Path(p) for p in hist["set_aside"]]
    assert [p.name for p in aside] == ["checkpoint-000002", "checkpoint-000003", "checkpoint-000004"] and all(p.is_dir() for p in aside)
    assert [json.loads(l)["step"] for l in (aside[0].parent/"metrics.jsonl").read_text().splitlines()] == [2, 3, 4, 4]
    _CRASH.update(at=None)
    train(load_train_config(overrides=[*args, "resume=latest"]))
    rows = read_metrics(out)
    losses = {r["step"]: r["loss"] for r in rows if "loss" in r}
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]  # every step once: none lost, none doubled
    assert losses == straight  # same checkpoint, same data order: the new branch retraces the old one exactly
