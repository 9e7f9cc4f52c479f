"""Build a chapter notebook from a list of cells: ('md', text) or ('code', text, [tags]). See tools/CHAPTERS.md."""
import nbformat, os, sys, tempfile
from common import COLAB_METADATA
# where the builders write by default: this repository's book/
BOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "book")
TMP = tempfile.gettempdir()
def build(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}, **COLAB_METADATA}
    for c in cells:
        kind, text = c[0], c[1].strip("\n")
        tags = c[2] if len(c) > 2 else []
        cell = nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text)
        if tags:
            cell.metadata["tags"] = tags
        cell["id"] = f"c{len(nb.cells):02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    nbformat.write(nb, path)
