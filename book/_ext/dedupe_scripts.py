"""Drop repeated <script> tags from every page.

jupyter-book 1.0.4 registers sphinx-thebe's and sphinx-togglebutton's inline scripts twice, so each
page declared `const THEBE_JS_URL` twice and the browser raised "Identifier 'THEBE_JS_URL' has
already been declared" on every page (found by tests/test_browser.py).
"""


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for s in scripts:
        # the copies differ only in filename None vs "" (both mean an inline script)
        key = (getattr(s, "filename", s) or "", repr(getattr(s, "attributes", None)))
        if key not in seen:
            seen.add(key)
            unique.append(s)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
