"""Where a form may send a person afterwards: only a path of this site."""


def safe_path(target):
    """target when it is a same-site path, else None. No "//host", no control characters and
    no backslashes: "/<TAB>/evil.com" left werkzeug's redirect as "//evil.com" (the tab is
    dropped), and browsers read a backslash as a slash."""
    if target and target.startswith("/") and not target.startswith("//") \
            and target.isprintable() and "\\" not in target:
        return target
    return None
