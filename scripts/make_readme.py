"""Write README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which these machines cannot install)."""
import re, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]

def nbs_relative_links(md: str) -> str:
    "Links and images in index.ipynb are relative to nbs/ (so they work in JupyterLab and on the docs site); README.md sits one level up."
    return re.sub(r"(\]\()(?![a-z][a-z0-9+.-]*:|#|/)([^)\s]+\))", r"\1nbs/\2", md)

def readme_text() -> str:
    nb = nbformat.read(ROOT/"nbs"/"index.ipynb", as_version=4)
    parts = []
    for c in nb.cells:
        src = c.source.strip()
        if c.cell_type == "markdown": parts.append(src)
        elif c.cell_type == "code" and not src.startswith("#| hide"):
            parts.append("```python\n" + "\n".join(l for l in src.splitlines() if not l.startswith("#|")) + "\n```")
    body = nbs_relative_links("\n\n".join(parts))
    return "<!-- generated from nbs/index.ipynb by scripts/make_readme.py; edit the notebook, not this file -->\n\n" + body + "\n"

if __name__ == "__main__":
    (ROOT/"README.md").write_text(readme_text())
    print("README.md written")
