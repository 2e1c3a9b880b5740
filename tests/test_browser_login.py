from browser import screenshot
from conftest import PASSWORD


def test_login_page_in_chromium(live_server, chromium_page):
    page = chromium_page
    page.goto(live_server.url + "/login")
    screenshot(page, "login")
    page.fill("#username", "clerk")
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/console/")
