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
                       "cur_unknown": "stages: [{name: a}]\nbase_: {}\n", "cur_steps0": "stages: [{name: x, max_steps: 0}]\n",
                       # issue 25: escaping names, injected values, duplicate keys, non-finite values, unbounded sweeps
                       "cur_escape": "base: {model: {name_or_path: tiny-llama, device: cpu}, data: {corpus: verne, window: 16}}\n"
                                     f"out_dir: {d/'cur'}\nstages: [{{name: ../../../elsewhere, max_steps: 1}}]\n",
                       "run_badtag": nb + "tag: ../up\n", "run_nan": nb + "parameters: {scale: .nan}\n",
                       "run_inf": nb + "parameters: {scale: -.inf}\n", "run_dup": nb + "parameters: {x: 1, x: 2}\n",
                       "run_envkey": nb + "slurm: {env: {'A;touch injected': 1}}\n",
                       "run_envval": nb + "slurm: {env: {A: \"x\\ntouch injected\"}}\n",
                       "run_yamlpart": nb + "slurm: {partition: \"gpu\\ntouch injected\"}\n",
                       "run_module": nb + "slurm: {modules: [\"cuda\\ntouch injected\"]}\n",
                       "run_bigsweep": nb + f"sweep: {{grid: {{x: {list(range(1000))}, scale: {list(range(1000))}}}}}\n",
                       "dup": "model: {name_or_path: tiny-llama, device: cpu}\ndata: {corpus: verne, window: 16}\nmax_steps: 1\nlr: 1e-3\nlr: 2e-3\n", "deep": "lr: " + "[" * 5000 + "]" * 5000 + "\n"}.items():
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
        ("adir", "adir is a folder"), ("train5.yaml", "`train:` must hold a mapping"),
        ("dup.yaml", "dup.yaml: duplicate key 'lr' (line 5, first at line 4)"), ("deep.yaml", "deep.yaml is nested deeper than")]],
    *[(f"curriculum-{n}", "ntp_rl_curriculum", ["--config", f"{{d}}/{n}.yaml"], c, None) for n, c in [
        ("missing", "missing.yaml does not exist"), ("cur_stages", "CurriculumConfig.stages=5 is an int"),
        ("cur_noname", "unique `name`"), ("cur_unknown", "unknown curriculum keys ['base_']"), ("cur_steps0", "stage 'x': max_steps=0"),
        ("cur_escape", "stage name '../../../elsewhere' is not a plain name"),
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
        ("bad", "not valid YAML"), ("missing", "missing.yaml does not exist"),
        ("run_badtag", "tag '../up' is not a plain name"), ("run_nan", "parameter scale=nan is not a finite number"),
        ("run_inf", "parameter scale=-inf is not a finite number"), ("run_dup", "duplicate key 'x'"),
        ("run_bigsweep", "the sweep gives 1000000 runs, more than --max-runs 10000")]],
    # issue 25: --dry-run checks values as the run would; values written into a SLURM script are checked, never injected
    *[(f"run-dry-{i}", "ntp_rl_run", [f"{{d}}/{n}.yaml", "--dry-run", *a, "--out-root", "{o}"], c, "{o}") for i, n, a, c in [
        ("nan", "run_nan", [], "scale=nan is not a finite number"), ("bigsweep", "run_bigsweep", ["--slurm"], "1000000 runs"),
        ("p-unknown", "ok", ["-p", "nope", "1"], "has no parameter 'nope'"), ("p-type", "ok", ["-p", "x", "abc"], "x='abc' is a str"),
        ("p-nan", "ok", ["-p", "scale", "nan"], "scale=nan is not a finite number"),
        ("p-one-value", "ok", ["-p", "x"], "expected 2 arguments"), ("p-out-dir", "ok", ["-p", "out_dir", "/tmp"], "do not set out_dir")]],
    ("run-execute-with-p", "ntp_rl_run", ["--execute", "{b}/run_noparams", "-p", "x", "1"], "-p is for a parameter file", "{b}/run_noparams"),
    *[(f"run-slurm-{f}-injected", "ntp_rl_run", ["{d}/ok.yaml", "--slurm", f"--{f}", "x\ntouch injected", "--out-root", "{o}"],
       f"slurm.{f.replace('-', '_')}", "{o}") for f in ("partition", "account", "qos", "job-name", "activate", "mem", "time")],
    ("run-slurm-sbatch-arg-injected", "ntp_rl_run", ["{d}/ok.yaml", "--slurm", "--sbatch-arg", "--x=1\ntouch injected",
                                                     "--out-root", "{o}"], "slurm.sbatch_args", "{o}"),
    ("run-slurm-module-injected", "ntp_rl_run", ["{d}/ok.yaml", "--slurm", "--module", "m\rtouch", "--out-root", "{o}"],
     "slurm.modules", "{o}"),
    *[(f"run-slurm-{n}", "ntp_rl_run", [f"{{d}}/{n}.yaml", "--slurm", "--out-root", "{o}"], c, "{o}") for n, c in [
        ("run_envkey", "slurm.env key 'A;touch injected' is not a shell variable name"), ("run_envval", "slurm.env.A"),
        ("run_yamlpart", "slurm.partition"), ("run_module", "slurm.modules")]],
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

# ------------------------------------------------------------------ issue 25: damaged checkpoints, concurrent runs, partial runs
def _damage(path:Path, how:str):
    "Damage a (hard-linked) file as a crash, a bad disk or a careless copy would: random bytes, cut in half, or gone."
    data = path.read_bytes(); path.unlink()
    if how == "random": path.write_bytes(os.urandom(len(data)))
    elif how == "truncated": path.write_bytes(data[:len(data) // 2])

@pytest.mark.parametrize("name, how", [("random_states_0.pkl", "random"), ("model.safetensors", "truncated"),
                                       ("optimizer.bin", "missing"), ("scheduler.bin", "random"), ("model.safetensors", "missing")])
def test_damaged_checkpoint_is_refused(name, how, b, tmp_path, capsys):
    "A damaged file of the newest checkpoint: the resume refuses in one line naming the file and the previous good checkpoint."
    out = _link_copy(b/"train", tmp_path/"r")
    f = out/"checkpoint-000002"/name
    _damage(f, how)
    before = _state(out)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e: cli.ntp_rl_train([*TRAIN, f"out_dir={out}", "resume=latest", "max_steps=3"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(visible_lines(err)) == 1, err
    assert str(f) in err and "damaged" in err and f"resume={out/'checkpoint-000001'}" in err, err
    assert _state(out) == before

def test_corrupt_rng_state_refused_without_checksums(b, tmp_path, capsys):
    "A checkpoint written before checksums existed: an RNG state that cannot be loaded is still an error, never a warning."
    out = _link_copy(b/"train", tmp_path/"r")
    for c in out.glob("checkpoint-*/checksums.json"): c.unlink()
    _damage(out/"checkpoint-000002"/"random_states_0.pkl", "random")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e: cli.ntp_rl_train([*TRAIN, f"out_dir={out}", "resume=latest", "max_steps=3"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(visible_lines(err)) == 1 and "random_states_0.pkl" in err and "checkpoint-000001" in err, err

_SLOW_TRAIN = """import sys, time
from ntp_rl.trainer import NextTokenObjective, load_train_config, register_objective, train
class Slow(NextTokenObjective):
    def loss(self, lm, batch, ro):
        time.sleep(0.4); return super().loss(lm, batch, ro)
register_objective("slow-test", Slow)
print(train(load_train_config(overrides=sys.argv[1:])))
"""

def _wait_for(path:Path, p:subprocess.Popen, limit:float=180):
    t0 = time.time()
    while not path.exists():
        assert p.poll() is None, p.communicate()
        assert time.time() - t0 < limit, f"{path} never appeared"
        time.sleep(0.05)

def test_two_trainers_one_out_dir(tmp_path, capsys):
    "A second training run into an out_dir another process trains in fails at once, naming its pid; the first is untouched."
    from ntp_rl.trainer import checkpoints, read_metrics
    out = tmp_path/"r"
    p = subprocess.Popen([sys.executable, "-c", _SLOW_TRAIN, *TRAIN, "objective=slow-test", f"out_dir={out}", "max_steps=8",
                          "save_every=4"], env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(out/"metrics.jsonl", p)  # step 1 is written: the first run is under way
        capsys.readouterr()
        for extra in ([], ["resume=latest"]):
            t0 = time.time()
            with pytest.raises(SystemExit) as e: cli.ntp_rl_train([*TRAIN, f"out_dir={out}", "max_steps=8", *extra])
            err = capsys.readouterr().err
            assert e.value.code == 2 and len(visible_lines(err)) == 1 and f"pid {p.pid}" in err and str(out) in err, err
            assert time.time() - t0 < 5  # at once: before the model or the data is loaded
    finally: _, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr[-2000:]
    assert [r["step"] for r in read_metrics(out) if "loss" in r] == list(range(1, 9))
    assert [c.name for c in checkpoints(out)] == ["checkpoint-000004", "checkpoint-000008"]
    assert sorted(q.name for q in tmp_path.iterdir()) == ["r"]  # the lock is gone with its run

def _slow_notebook(dst:Path) -> Path:
    "tiny_run.ipynb with a `sleep` parameter, so that a run is still executing when a second one starts."
    nb = json.loads(NB.read_text())
    for c in nb["cells"]:
        if "parameters" in c["metadata"].get("tags", []): c["source"] = "".join(c["source"]) + "\nsleep = 0.0 # seconds\n"
    nb["cells"].insert(-1, dict(cell_type="code", id="sleep", metadata={}, execution_count=None, outputs=[],
                                source="import time; time.sleep(sleep)"))
    dst.write_text(json.dumps(nb))
    return dst

def test_two_runs_one_folder(tmp_path, capsys):
    "Two ntp_rl_run of one notebook and tag on one day: the second fails at once naming the first's pid; the first's results stay."
    nb = _slow_notebook(tmp_path/"slow.ipynb")
    spec = tmp_path/"s.yaml"; spec.write_text(f"notebook: {nb}\nparameters: {{x: 3, sleep: 4.0}}\n")
    root = tmp_path/"runs"
    p = subprocess.Popen(_cmd("ntp_rl_run") + [str(spec), "--out-root", str(root)], env=_env(), cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.time()
        while not list(root.glob("*_slow_main/run.yaml")):
            assert p.poll() is None and time.time() - t0 < 120, p.communicate()
            time.sleep(0.05)
        run_dir = next(root.glob("*_slow_main"))
        before = (run_dir/"run.yaml").stat().st_ino
        capsys.readouterr()
        with pytest.raises(SystemExit) as e: cli.ntp_rl_run([str(spec), "--out-root", str(root)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(visible_lines(err)) == 1 and f"pid {p.pid}" in err and run_dir.name in err, err
        assert (run_dir/"run.yaml").stat().st_ino == before  # not deleted and made again
    finally: stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0 and "ok" in stdout, stderr[-2000:]
    assert json.loads((run_dir/"metrics.json").read_text())["x2"] == 9 and (run_dir/"slow.ipynb").exists()
    assert sorted(q.name for q in root.iterdir()) == [run_dir.name]  # no lock left behind

def _small_corpus(tmp_path:Path) -> Path:
    t = tmp_path/"docs.txt"
    t.write_text("\n\n".join(f"Document {i} tells of the sea, the ship and the captain number {i}." for i in range(6)))
    return t

def test_partial_entropy_run_is_flagged(b, tmp_path, capsys):
    "An entropy run killed after 2 of 3 shards: the viewer page, the export and the command say it is partial."
    from ntp_rl.entropy import EntropyConfig, run_entropy, shard_path
    from ntp_rl.viewer import export_page, serve
    out = tmp_path/"e"
    run_entropy(EntropyConfig(model="tiny-llama", data=str(_small_corpus(tmp_path)), window=32, device="cpu", out=str(out),
                              shard_windows=2, plot_rows=1000), progress=False)
    assert len(list(out.glob("shard-*.parquet"))) == 3
    shard_path(out, 2).unlink(); (out/"summary.json").unlink()  # as a kill after the second shard leaves it
    assert "partial run: 2 of 3 shards" in export_page(out, tmp_path/"p.html").read_text()
    assert "partial" not in export_page(b/"ent", tmp_path/"full.html").read_text()
    srv = serve(out, port=0, n=2)
    try: page = urllib.request.urlopen(f"http://127.0.0.1:{srv.server_address[1]}/", timeout=10).read().decode()
    finally: srv.shutdown(); srv.server_close()
    assert "partial run: 2 of 3 shards" in page
    capsys.readouterr()
    cli.ntp_rl_view(["--entropies", str(out), "--export", str(tmp_path/"p2.html")])
    err = capsys.readouterr().err
    assert "warning" in err and "2 of 3 shards" in err, err

def test_plot_rows_keeps_full_summary(tmp_path):
    "--plot-rows samples what the plots read; summary.json's statistics are over every row, whatever --plot-rows says."
    from ntp_rl.entropy import EntropyConfig, load_entropies, run_entropy
    cfg = dict(model="tiny-llama", data=str(_small_corpus(tmp_path)), window=32, device="cpu", out=str(tmp_path/"e"), shard_windows=2)
    full = run_entropy(EntropyConfig(**cfg, plot_rows=100_000), progress=False)
    small = run_entropy(EntropyConfig(**cfg, plot_rows=1), progress=False)  # a rerun on the same folder, sampling one shard
    h = load_entropies(tmp_path/"e")["entropy"].dropna()
    stored = json.loads((tmp_path/"e"/"summary.json").read_text())
    for s in (full, small, stored):
        assert s["n_predicted"] == len(h) and s["mean_entropy"] == pytest.approx(float(h.mean()), rel=1e-6), s
        assert s["median_entropy"] == pytest.approx(float(h.median()), rel=1e-6)
    assert small["sampled_rows"] < full["sampled_rows"] == full["n_rows"]

def test_slurm_values_are_quoted(tmp_path):
    "Values that are safe but not plain words are quoted in the script; bash reads it back unchanged."
    from ntp_rl.runs import SlurmConfig, slurm_script
    cfg = SlurmConfig(job_name="my job", partition="gpu", env={"HF_HOME": "/scratch/a b"}, sbatch_args=["--comment=two words"])
    s = slurm_script([tmp_path/"x y"], cfg, tmp_path, tmp_path/"logs")
    assert "#SBATCH --job-name='my job'" in s and "#SBATCH --partition=gpu" in s and "#SBATCH '--comment=two words'" in s, s
    assert "export HF_HOME='/scratch/a b'" in s
    assert subprocess.run(["bash", "-n"], input=s, text=True).returncode == 0
    from ntp_rl.core import safe_value
    assert safe_value("ok name", "v") == "ok name" and safe_value("HF_HOME", "k", "env") == "HF_HOME"
    for v, kind in [("x\ny", "text"), ("a\x00", "text"), ("1X", "env"), ("a=b", "env"), ("../x", "name"), ("", "name"), (".x", "name")]:
        with pytest.raises(NtpRlError): safe_value(v, "v", kind)

def test_sweep_cap_and_parameter_overrides(d, tmp_path, capsys):
    "A 10^6-run grid is refused at once; --max-runs raises the cap; -p name value overrides a parameter (checked like the YAML)."
    t0 = time.time()
    with pytest.raises(SystemExit) as e: cli.ntp_rl_run([str(d/"run_bigsweep.yaml"), "--dry-run"])
    assert e.value.code == 2 and time.time() - t0 < 2 and "--max-runs" in capsys.readouterr().err
    spec = tmp_path/"s.yaml"; spec.write_text(f"notebook: {NB}\nsweep: {{grid: {{x: {list(range(110))}, scale: {list(range(100))}}}}}\n")
    cli.ntp_rl_run([str(spec), "--dry-run", "--max-runs", "20000", "--out-root", str(tmp_path/"o")])
    assert "11000 run(s) would execute" in capsys.readouterr().out
    cli.ntp_rl_run([str(d/"ok.yaml"), "--dry-run", "-p", "x", "5", "-p", "name", "two words", "--param", "scale", "2.5e-1",
                    "--out-root", str(tmp_path/"o")])
    assert "{'x': 5, 'name': 'two words', 'scale': 0.25}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e: cli.ntp_rl_run([str(spec), "--dry-run", "--max-runs", "20000", "-p", "x", "1"])
    assert e.value.code == 2 and "x is swept" in capsys.readouterr().err
    assert not (tmp_path/"o").exists()

def _http(port:int, request:bytes) -> tuple[int, dict, bytes]:
    "Send raw bytes to the viewer; return its status, headers and body."
    s = socket.create_connection(("127.0.0.1", port), timeout=10); s.sendall(request)
    data = b""
    while chunk := s.recv(65536): data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return int(lines[0].split()[1]), {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}, body

def test_viewer_host_header_and_headers_on_every_response(b):
    "Only loopback Host names are answered (DNS rebinding), unless --host names another; every response carries the headers."
    from ntp_rl.viewer import serve
    srv = serve(b/"ent", port=0, n=2)
    port = srv.server_address[1]
    try:
        get = lambda host, path="/": _http(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}", f"LOCALHOST:{port}"):
            assert get(host)[0] == 200, host
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", ""):
            code, _, body = get(host)
            assert code == 421 and b"Host" in body, (host, code, body)
        responses = [get("evil.example"), get(f"localhost:{port}", "/nope"), get(f"localhost:{port}", "/?sort=bogus"),
                     _http(port, b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                     _http(port, b"GARBAGE\r\n\r\n"), _http(port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")]
        assert [r[0] for r in responses][:5] == [421, 404, 400, 501, 400]
        for code, h, _ in responses:
            assert h.get("x-content-type-options") == "nosniff" and "frame-ancestors 'none'" in h.get("content-security-policy", ""), (code, h)
    finally: srv.shutdown(); srv.server_close()
    srv = serve(b/"ent", host="0.0.0.0", port=0, n=2)  # --host names every interface: other names are the user's choice
    try: assert _http(srv.server_address[1], b"GET / HTTP/1.1\r\nHost: viewer.lab.example\r\nConnection: close\r\n\r\n")[0] == 200
    finally: srv.shutdown(); srv.server_close()

def test_two_entropy_runs_one_folder(tmp_path, capsys):
    "An entropy run into a folder another process holds fails at once, naming that pid, and creates nothing."
    out = tmp_path/"e"
    code = f"import sys; from ntp_rl.core import lock_folder; lock_folder({str(out)!r}, 'entropy run'); print('held', flush=True); sys.stdin.read()"
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        assert p.stdout.readline() == "held\n"
        capsys.readouterr()
        with pytest.raises(SystemExit) as e: cli.ntp_rl_entropy([*E[:-1], str(out), "--data", "verne", "--n-docs", "2"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(visible_lines(err)) == 1 and f"is in use by another entropy run (pid {p.pid})" in err, err
    finally: p.communicate("")
    assert not out.exists()
