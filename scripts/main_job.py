"""The main job (`make run`): execute the quick-start notebooks headless through papermill, outputs under papermill_runs/.
Each step is a notebook a user can open in JupyterLab afterwards."""
import datetime, json, os, sys, time
from pathlib import Path
import papermill as pm, yaml

ROOT = Path(__file__).resolve().parents[1]

def run_step(spec_file: Path) -> Path:
    spec = yaml.safe_load(spec_file.read_text())
    nb = ROOT/spec["notebook"]
    out = ROOT/"papermill_runs"/f"{datetime.date.today():%Y-%m-%d}_{nb.stem}_{spec.get('tag', 'main')}"
    out.mkdir(parents=True, exist_ok=True)
    params = dict(spec.get("parameters", {}), out_dir=str(out))
    (out/"params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    t0 = time.time()
    pm.execute_notebook(str(nb), str(out/nb.name), parameters=params, kernel_name="python3", cwd=str(ROOT/"nbs"),
                        progress_bar=True)
    print(f"{nb.stem}: done in {time.time()-t0:.0f} s -> {out}")
    return out

def main():
    outs = [run_step(ROOT/"papermill_runs"/"quickstart.yaml")]
    print("\nmain job finished; outputs:")
    for o in outs:
        for f in sorted(o.iterdir()): print(f"  {f.relative_to(ROOT)}")
        m = o/"metrics.json"
        if m.exists(): print("  metrics:", json.dumps(json.loads(m.read_text())))

if __name__ == "__main__": main()
