"""Run every notebook's lesson cells as tests, with nbdev semantics (cells flagged `notest`/`gpu`/`slow` are skipped),
one pytest test per notebook so CI prints pytest's summary line."""
import os
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

ROOT = Path(__file__).resolve().parents[1]
cfg = get_config(cfg_name="settings.ini", path=ROOT)
NBS = sorted(p for p in (ROOT/"nbs").rglob("*.ipynb")
             if not any(part.startswith(("_", ".")) for part in p.relative_to(ROOT/"nbs").parts))

@pytest.mark.parametrize("nb", NBS, ids=[str(p.relative_to(ROOT/"nbs")) for p in NBS])
def test_notebook(nb, monkeypatch):
    monkeypatch.chdir(nb.parent)
    ok, secs = run_notebook(nb, skip_flags=cfg.tst_flags.split(), basepath=cfg.config_path, do_print=False)
    assert ok, f"{nb.name} failed (its traceback is printed above)"
