"""Draw the front-page picture `nbs/images/entropy.png`: the default model's next-token entropy at every position of a
short worked problem, the quantity ntp_rl's budget policy learns to spend thought tokens on.
Run from a checkout after `make setup`: `.venv/bin/python scripts/make_front_image.py` (about 10 s on a CPU)."""
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from ntp_rl.core import load_model

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May? "
        "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in April and May.")

def token_entropies(model, tok, text: str):
    "Entropy (nats) of the model's prediction of each token given the ones before it; the first token has none."
    ids = tok(text, return_tensors="pt").input_ids  # (1, T)
    with torch.no_grad(): logits = model(ids).logits[0, :-1].float()  # (T-1, V)
    logp = logits.log_softmax(-1)
    ent = -(logp.exp() * logp).sum(-1)  # (T-1,)
    return [tok.decode([i]) for i in ids[0, 1:].tolist()], ent.tolist()

def main(out: Path = ROOT/"nbs"/"images"/"entropy.png"):
    torch.manual_seed(0); torch.set_num_threads(1)
    model, tok = load_model("smollm2-135m")
    toks, ent = token_entropies(model, tok, TEXT)
    fig, ax = plt.subplots(figsize=(15, 3.6))
    hi = sorted(ent)[int(0.8 * len(ent))]  # top 20 % of positions: where thinking should pay
    ax.bar(range(len(ent)), ent, color=["#d95f02" if e >= hi else "#7570b3" for e in ent], width=0.85)
    ax.set_xticks(range(len(toks)), [t.replace("\n", "\\n") for t in toks], rotation=90, fontsize=8)
    ax.set_xlim(-0.7, len(toks) - 0.3)
    ax.set_ylabel("entropy (nats)")
    ax.set_title("SmolLM2-135M: uncertainty of each next token (orange: top 20 %, where a thought budget is worth spending)",
                 fontsize=10)
    for s in ("top", "right"): ax.spines[s].set_visible(False)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, bbox_inches="tight")
    print(f"{out.relative_to(ROOT)}: {len(toks)} tokens, mean entropy {sum(ent)/len(ent):.2f} nats, max {max(ent):.2f}")

if __name__ == "__main__": main()
