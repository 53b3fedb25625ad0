"""Write a benchmark result file `benchmarks/results/<name>.json` in the format of benchmarks/README.md."""
import datetime, json, os, platform, sys
from pathlib import Path

RESULTS = Path(os.environ.get("NTP_RL_BENCH_RESULTS", Path(__file__).resolve().parent/"results"))

def machine() -> str:
    "CPU/GPU, cores, threads and torch version: enough to tell whether two result files are comparable."
    s = f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"
    try:
        import torch
        dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
        s += f", torch {torch.__version__} ({dev}, {torch.get_num_threads()} threads)"
    except ImportError: pass
    return s

def write_result(name: str, results: list[dict], ratios: dict | None = None, description: str = "",
                 title: str | None = None, notes: str = "", plot: str | None = None, command: str | None = None) -> Path:
    "Write `results/<name>.json`; `results` are the table rows, `ratios` the headline numbers of this run."
    if not results or not all(isinstance(r, dict) for r in results):
        raise ValueError("results must be a non-empty list of dicts (one table row per measurement)")
    rec = dict(name=name, title=title or name, description=description,
               command=command or " ".join(["python", *sys.argv]), date=datetime.datetime.now().isoformat(timespec="seconds"),
               machine=machine(), results=results, ratios=ratios or {}, notes=notes)
    if plot: rec["plot"] = plot
    RESULTS.mkdir(parents=True, exist_ok=True)
    f = RESULTS/f"{name}.json"
    f.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {f}")
    return f


def flat_rows(res: dict, prefix: str = "") -> list[dict]:
    "A (nested) dict of numbers as table rows {metric, value}: for scripts whose results are one record."
    rows = []
    for k, v in res.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict): rows += flat_rows(v, key + ".")
        elif isinstance(v, (int, float, str, bool)) or v is None: rows.append(dict(metric=key, value=v))
        else: rows.append(dict(metric=key, value=str(v)))
    return rows
