"""A browser of the tests' live server at one loopback address (127.0.0.2 is another machine
to the server's sign-in limits): its own cookie, forms with their CSRF token, file uploads.
Plain http.client, so many of them run at once in threads."""
import http.client
import re
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

from conftest import PASSWORD


class Desk:
    def __init__(self, server, address="127.0.0.1"):
        parts = urlsplit(server.url)
        self.host, self.port, self.address = parts.hostname, parts.port, address
        self.cookie = ""

    def request(self, method, path, body=None, content_type=None):
        """(status, headers, page text) of one request, with this desk's cookie."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60,
                                          source_address=(self.address, 0))
        headers = {"Accept-Language": "en", "Cookie": self.cookie}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            page = response.read().decode("utf-8", "replace")
        finally:
            conn.close()
        cookie = SimpleCookie(response.getheader("Set-Cookie") or "")
        if "session" in cookie:
            self.cookie = f"session={cookie['session'].value}"
        return response.status, response.headers, page

    def csrf(self, path="/login"):
        page = self.request("GET", path)[2]
        return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)

    def post_form(self, path, fields, token=None):
        body = urlencode({**fields, "csrf_token": token or self.csrf(path)})
        return self.request("POST", path, body, "application/x-www-form-urlencoded")

    def post_files(self, path, fields, files, page=None):
        """A multipart form: fields {name: text}, files [(field, file name, bytes)]; the
        CSRF token is read off `page` (default: path)."""
        body, content_type = multipart({**fields, "csrf_token": self.csrf(page or path)}, files)
        return self.request("POST", path, body, content_type)

    def sign_in(self, username="admin", password=PASSWORD, token=None):
        return self.post_form("/login", {"username": username, "password": password}, token)


def multipart(fields, files):
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
             f"{value}\r\n".encode() for name, value in fields.items()]
    for field, filename, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}";'
                     f' filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"
