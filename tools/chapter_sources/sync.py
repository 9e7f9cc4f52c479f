"""Copy markdown cells from a fresh build into the rendered notebook (code must be identical)."""
import json, os, subprocess, sys, tempfile
fresh_path = os.path.join(tempfile.gettempdir(), "_fresh.ipynb")
builder, rendered = sys.argv[1], sys.argv[2]
subprocess.run([sys.executable, builder, fresh_path], check=True)
fresh = json.load(open(fresh_path)); nb = json.load(open(rendered))
cells = [c for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
assert len(cells) == len(fresh["cells"]), (len(cells), len(fresh["cells"]))
n = 0
for c, f in zip(cells, fresh["cells"]):
    assert c["cell_type"] == f["cell_type"]
    src = "".join(f["source"]) if isinstance(f["source"], list) else f["source"]
    if c["cell_type"] == "code":
        assert "".join(c["source"]) == src, "code differs: re-render"
    elif "".join(c["source"]) != src:
        c["source"] = src.splitlines(keepends=True); n += 1
json.dump(nb, open(rendered, "w"), indent=1, ensure_ascii=False); open(rendered, "a").write("\n")
print("updated", n, "markdown cells")
