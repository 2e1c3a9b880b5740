"""What `pybabel extract` reads from this code (babel.cfg, scripts/translations.sh): Python's
t(), N_() and counted() calls, as Babel's own extractor finds them, and the import's reasons.

A reason (a photo too small, an ID number with a wrong check digit) is raised as English with
its values in it, stored so, and written to the import report so: the page translates it by
the catalogue's template, "{0}" for each value (i18n.reason). Its template is read here from
the f-string that raises it, so the code stays the one place a reason is written.
"""
import ast

from babel.messages.extract import extract_python

# The exceptions a reason is raised with, and the calls that record one.
RAISED = {"PhotoRejected", "PhotoMissing", "ValueError", "RowInvalid", "ImportFailed", "RecordRefused"}


def extract(fileobj, keywords, comment_tags, options):
    """Babel's extractor interface: (line, function, message, comments) of each message."""
    yield from extract_python(fileobj, keywords, comment_tags, options)
    fileobj.seek(0)
    tree = ast.parse(fileobj.read().decode(options.get("encoding", "utf-8")))
    for node in ast.walk(tree):
        for found in _reasons(node):
            text = template(found)
            if text:
                yield found.lineno, None, text, ["an import reason: {0}, {1}... are its values"]


def reason_templates(source):
    """Every reason template of a module's source (tests check each has a translation)."""
    return {template(found) for node in ast.walk(ast.parse(source)) for found in _reasons(node)} - {None}


def template(node):
    """A reason's catalogue key: a string as it is, an f-string with {0}, {1}... for its values."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        fields = iter(range(len(node.values)))
        return "".join(part.value if isinstance(part, ast.Constant) else "{%d}" % next(fields)
                       for part in node.values)
    return None


def _reasons(node):
    """The expressions of a node that are a reason: an argument of a raise above, the reason
    of an import row (_add's sixth), a `reason = ...`, what a *_reason function returns."""
    if isinstance(node, ast.Call):
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name in RAISED:
            yield from node.args
        elif name == "_add" and len(node.args) == 6:
            yield node.args[5]
    elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "reason" for t in node.targets):
        yield node.value
    elif isinstance(node, ast.FunctionDef) and (node.name.endswith("_reason") or node.name == "unalignable"):
        yield from (r.value for r in ast.walk(node) if isinstance(r, ast.Return))

