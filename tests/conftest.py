"Shared pytest setup: offline, single-threaded, this checkout's ntp_rl first on sys.path."
import os, sys
from pathlib import Path
for k, v in dict(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                 HF_DATASETS_OFFLINE="1", MPLBACKEND="Agg").items():
    os.environ.setdefault(k, v)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import torch
torch.set_num_threads(1)
