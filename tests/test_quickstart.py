"The quick-start notebook executed headless through papermill with CI-sized parameters, as the main job runs it."
import json
from pathlib import Path
import papermill as pm

ROOT = Path(__file__).resolve().parents[1]

def test_quickstart_papermill(tmp_path):
    out = tmp_path/"run"
    pm.execute_notebook(str(ROOT/"nbs/experiments/quickstart.ipynb"), str(tmp_path/"quickstart.ipynb"),
                        parameters=dict(n_windows=2, window=64, out_dir=str(out)), kernel_name="python3",
                        cwd=str(ROOT/"nbs"), progress_bar=False)
    m = json.loads((out/"metrics.json").read_text())
    assert m["model"] == "smollm2-135m"
    # the real model is far better than chance (log 49152 = 10.8 nats) on both held-out corpora
    assert 1 < m["ppl_gsm"] < 60 and 1 < m["ppl_wiki"] < 100, m
    assert (out/"perplexity.png").stat().st_size > 1000
