"""The device API client (urllib, short timeouts): gallery deltas, config, session uploads,
and the case-file calls of server/casefile.py.

A report (a blink's verdict, a ticket request, a try of phone digits) is sent by the outbox
(device/sync.py) with post_report(); case_details() with digits hands its try to the outbox
the client is attached to, so the kiosk's details keypad gets exactly-once tries unchanged.

Every failure is one of three exceptions, because the caller does three different things:
  Offline       no answer, a timeout, a 5xx, 408 or 429, or an answer that is not the API's
                own (a proxy's 413 or 404 page): keep the data, try again later (not before
                its retry_after, for a 429 that says when)
  Revoked       401 from the API: this device's token is no longer valid; stop syncing, keep
                the data
  Rejected      any other 4xx from the API: this request can never succeed as sent
                (dead-letter it)
"""
import base64
import http.client
import json
import socket
import urllib.error
import urllib.request
import uuid

from recognition import models

FACE_MODELS_HEADER = "X-Face-Models"


class ApiFailure(Exception):
    pass


class Offline(ApiFailure):
    """The server could not be reached or did not answer usefully; retry later. status: the
    HTTP status when the server answered; fails_here: it answered, but failed on this very
    request (a 500, or a proxy's 413 for a large snapshot), so requests behind it may pass."""

    def __init__(self, message, status=None, fails_here=False, retry_after=None):
        super().__init__(message)
        self.status = status
        self.fails_here = fails_here
        self.retry_after = retry_after


class Revoked(ApiFailure):
    """The server refused the device token (401)."""


class Rejected(ApiFailure):
    """The server refused the request for good (4xx other than 401, 408, 429)."""

    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


TRANSIENT_4XX = (408, 425, 429)
MAX_RETRY_AFTER_S = 3600     # a Retry-After longer than this (or a garbled one) waits this long

# Where each kind of report goes (POST /api/v1/sessions/<id>/...), and the statuses that are
# the registry's answer to it although they would be "try again later" for another request:
# a digit try answered 429 ("wait 4 seconds", "this device has used up its tries") was looked
# at and not counted; sent again later it would be counted behind the citizen's next try.
REPORT_PATHS = {"liveness": "liveness", "ticket": "ticket", "second_factor": "casefile/details"}
REPORT_ANSWERS = {"second_factor": (429,)}
# A pass's evidence is examined before the answer (faces found and encoded in each crop): on a
# busy server longer than a device's usual timeout, and each copy sent after a timeout is
# examined again and takes a slot of the device's budget.
REPORT_TIMEOUT_S = {"liveness": 10.0}
DETAILS_WAIT_S = 8.0         # a citizen at the keypad waits this long for their digits' answer


class ApiClient:
    """Talks to /api/v1 of the server at base_url with a device bearer token."""

    def __init__(self, base_url, token, timeout=3.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.outbox = None      # the Syncer that delivers this client's reports (it sets itself)

    def fingerprint(self):
        """Which server and token this client uses, without the token: what a device's
        store records to notice it was pointed elsewhere."""
        import hashlib
        return f"{self.base_url} {hashlib.sha256(self.token.encode()).hexdigest()[:16]}"

    def gallery(self, since):
        """The gallery delta after sync seq `since` (see server.api.gallery_delta)."""
        return self._request("GET", f"/api/v1/gallery?since={int(since)}")

    def config(self):
        return self._request("GET", "/api/v1/config")

    def post_session(self, session, snapshot=None):
        """Upload one session (dict) with an optional JPEG; returns the stored session.
        Safe to repeat: the server keys sessions by their id."""
        if snapshot is None:
            return self._request("POST", "/api/v1/sessions", json.dumps(session).encode("utf-8"),
                                 "application/json")
        body, content_type = _multipart({"session": json.dumps(session)},
                                        {"snapshot": ("snapshot.jpg", snapshot, "image/jpeg")})
        return self._request("POST", "/api/v1/sessions", body, content_type)

    def report_liveness(self, session_id, result, t, evidence=()):
        """The blink verdict, sent now (a device sends it through its outbox instead)."""
        return self.post_report("liveness", session_id, liveness_body(result, t, evidence))

    def open_case_file(self, session_id, citizen_key):
        return self._post(f"/api/v1/sessions/{session_id}/casefile", {"citizen_key": citizen_key})

    def case_details(self, session_id, phone_last4=None):
        """The case details, behind the second factor when the digits are given. A try of
        digits is a report: with an outbox attached it is committed there under its own
        try_id before it is sent, and sent from there in order behind its visit, so a try
        whose answer was lost is sent again under the same id and counted once by the
        registry. Its answer (or Rejected: wrong, locked, wait) comes back here within
        DETAILS_WAIT_S; Offline after that, the try still kept for the registry."""
        if phone_last4 is None or self.outbox is None:
            body = {} if phone_last4 is None else {"phone_last4": phone_last4}
            return self.post_report("second_factor", session_id, body)
        try_id = str(uuid.uuid4())
        self.outbox.add_report(session_id, "second_factor", {"phone_last4": phone_last4, "try_id": try_id},
                               try_id, awaited=True, patient=False)
        return self.outbox.await_report(try_id, DETAILS_WAIT_S)

    def ticket(self, session_id):
        return self.post_report("ticket", session_id, {})

    def post_report(self, kind, session_id, body):
        """Send one report (REPORT_PATHS) as it was recorded; the registry's answer."""
        return self._request("POST", f"/api/v1/sessions/{session_id}/{REPORT_PATHS[kind]}",
                             json.dumps(body).encode("utf-8"), "application/json",
                             REPORT_ANSWERS.get(kind, ()), max(self.timeout, REPORT_TIMEOUT_S.get(kind, 0)))

    def identify(self, session_id, id_number, encoding, snapshot=None, model=None):
        """1:1 check of a visitor the device did not recognise: the typed ID number, the face
        encoding of their track (of the face model named, the registry's) and a JPEG crop of
        their face as they press OK (the server looks at it itself, as at the snapshot)."""
        body = {"id_number": id_number, "encoding": [float(v) for v in encoding], "model": model}
        if snapshot is not None:
            body["snapshot"] = base64.b64encode(snapshot).decode("ascii")
        return self._post(f"/api/v1/sessions/{session_id}/identify", body)

    def _post(self, path, body):
        return self._request("POST", path, json.dumps(body).encode("utf-8"), "application/json")

    def _request(self, method, path, body=None, content_type=None, answers=(), timeout=None):
        """The API's JSON answer; answers: statuses that are Rejected (this request's final
        answer) when the API says them, although they are Offline for other requests."""
        request = urllib.request.Request(self.base_url + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        # the face models this device's code can run: a registry on another one sends it no
        # thresholds and no templates it would read on the wrong scale
        request.add_header(FACE_MODELS_HEADER, ",".join(m.id for m in models.PROFILES.values()))
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                body = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            message, from_api = _error_message(e)
            if from_api and e.code in answers:
                raise Rejected(e.code, message) from None
            failure = _failure(e.code, message, from_api)
            if e.code == 429 and isinstance(failure, Offline):
                failure.retry_after = retry_after(e.headers.get("Retry-After"))
            raise failure from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
            raise Offline(f"server unreachable: {getattr(e, 'reason', e)}") from None
        except http.client.HTTPException as e:
            # a garbled status line or a body cut short: it ended the sync thread before
            raise Offline(f"server answered with a broken HTTP response ({type(e).__name__})") from None
        except ValueError:
            raise Offline("server answered with something that is not JSON") from None
        # Every answer of the API is an object; a list or a string (a proxy's page, a wrong
        # URL) reached the sync worker, whose .get() then raised and ended its thread.
        if not isinstance(body, dict):
            raise Offline("server answered with JSON that is not an object")
        return body


def liveness_body(result, t, evidence=()):
    """The body of a blink verdict: a pass carries its evidence, face crops of the blink with
    their times ([{"t", "jpeg": bytes}]), which the server checks itself (server/evidence.py)."""
    body = {"result": result, "t": t}
    if evidence:
        body["evidence"] = [{"t": e["t"], "jpeg": base64.b64encode(e["jpeg"]).decode("ascii")}
                            for e in evidence]
    return body


def _failure(status, message, from_api):
    lasting_4xx = 400 <= status < 500 and status not in TRANSIENT_4XX and status != 401
    if not from_api:
        # A proxy or firewall page (413, 403, 404 in HTML): not the API's verdict on this
        # session, which was dead-lettered for good on such a page before.
        return Offline(f"server error {status}: {message} (not the registry's answer)", status,
                       fails_here=status == 500 or lasting_4xx)
    if status == 401:
        return Revoked(message)
    if status >= 500 or status in TRANSIENT_4XX:
        return Offline(f"server error {status}: {message}", status, fails_here=status == 500)
    return Rejected(status, message)


def retry_after(value):
    """The seconds a 429's Retry-After asks to wait (delta-seconds; an HTTP date or nothing:
    a minute), between 1 and MAX_RETRY_AFTER_S."""
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()):
        return 60
    seconds = int(text) if len(text) <= 9 else MAX_RETRY_AFTER_S
    return max(1, min(seconds, MAX_RETRY_AFTER_S))


def _error_message(http_error):
    """(message, True) from the server's one error shape; (the HTTP reason, False) otherwise."""
    try:
        return str(json.loads(http_error.read().decode("utf-8"))["error"]["message"]), True
    except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException):
        return str(http_error.reason), False


def _multipart(fields, files):
    """(body, content type) of a multipart/form-data request."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     .encode() + value.encode("utf-8") + b"\r\n")
    for name, (filename, data, mime) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{filename}"\r\nContent-Type: {mime}\r\n\r\n'.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
