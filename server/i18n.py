"""Chinese and English UI text. English strings are the keys; zh has the translations.

Feature modules add their own strings with add_translations(); the language is chosen
by a switch in the page and kept in the session.
"""
from flask import redirect, request, session

LANGUAGES = ("zh", "en")
_ZH = {}


def add_translations(pairs):
    _ZH.update(pairs)


def current_language():
    lang = session.get("lang")
    if lang in LANGUAGES:
        return lang
    return request.accept_languages.best_match(LANGUAGES) or "zh" if request else "zh"


def t(text):
    return _ZH.get(text, text) if current_language() == "zh" else text


def init_app(app):
    app.jinja_env.globals.update(t=t, current_language=current_language)

    @app.route("/lang/<code>", methods=["POST"])
    def set_language(code):
        if code in LANGUAGES:
            session["lang"] = code
        target = request.referrer or "/"
        return redirect(target if target.startswith(request.host_url) else "/")


add_translations({
    "Sign in": "登录",
    "Sign out": "退出",
    "Username": "用户名",
    "Password": "密码",
    "Wrong username or password.": "用户名或密码错误。",
    "Too many failed attempts. Try again in {n} seconds.": "失败次数过多，请 {n} 秒后再试。",
    "Citizens": "市民",
    "Import": "批量导入",
    "Sessions": "接待记录",
    "Dashboard": "统计",
    "Admin": "管理",
    "Audit log": "审计日志",
    "Search": "搜索",
    "Error": "错误",
    "Civic service hall": "办税服务厅",
})
