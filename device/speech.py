"""Greetings: the text (a template per language) and the voice (pyttsx3 over espeak-ng).

Templates use {name} (the full display name), {surname}, {given_name} and {honorific}, so a
public hall can say "王女士" or "Hello, Ms Wang" instead of a full name. Speech runs in its own
thread behind a short queue: the recognition loop hands over the text and goes on; when the
voice falls behind, older utterances are dropped (a greeting for someone who left is noise).

Modes: "on" speaks through the sound card, "off" is silent, and "FILE.wav" writes each
utterance to a WAV file instead: the first to FILE.wav, then FILE-2.wav, FILE-3.wav, ...
"""
import logging
import os
import queue
import threading
import time

log = logging.getLogger(__name__)

UTTERANCE_TIMEOUT_S = 30.0
SETTLE_S = 0.05
VOICES = {"zh": "cmn", "yue": "yue", "en": "en"}   # espeak-ng voice names by citizen language
DEFAULT_TEMPLATES = {"zh": "{name}，您好！", "yue": "{name}，你好！", "en": "Hello, {name}!"}
# Two-character Chinese surnames; all others are one character.
_COMPOUND_SURNAMES = {"欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙",
                      "夏侯", "令狐", "宇文", "司徒", "南宫", "西门", "轩辕", "端木", "歐陽", "諸葛"}


def split_name(name):
    """(surname, given name): Chinese names surname first, others surname last."""
    name = name.strip()
    if name and _is_cjk(name[0]):
        cut = 2 if name[:2] in _COMPOUND_SURNAMES and len(name) > 2 else 1
        return name[:cut], name[cut:]
    parts = name.split()
    if len(parts) < 2:
        return name, ""
    return parts[-1], " ".join(parts[:-1])


def _is_cjk(char):
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


def greeting_text(name, language, templates=None, honorifics=None):
    """The greeting for a citizen: their language's template filled with their name."""
    templates = {**DEFAULT_TEMPLATES, **(templates or {})}
    template = templates.get(language) or templates["en"]
    surname, given = split_name(name)
    honorific = (honorifics or {}).get(language, "")
    try:
        return template.format(name=name, surname=surname, given_name=given, honorific=honorific)
    except (KeyError, IndexError, ValueError):
        log.warning("greeting template %r is broken; using the default", template)
        return DEFAULT_TEMPLATES.get(language, DEFAULT_TEMPLATES["en"]).format(name=name)


def voice_for(language):
    return VOICES.get(language, VOICES["en"])


class Speaker:
    """Speaks (or writes WAVs) in a worker thread. say() never waits for the voice."""

    def __init__(self, mode="on", rate=None, backlog=2):
        self.mode = mode
        self.rate = rate
        self.files = []            # WAV files written so far (FILE.wav mode)
        self._queue = queue.Queue(maxsize=backlog)
        self._thread = None
        if mode != "off":
            self._thread = threading.Thread(target=self._run, name="kiosk-speech", daemon=True)
            self._thread.start()

    def say(self, text, language="en"):
        """Queue an utterance; when the queue is full the oldest waiting one is dropped."""
        if self._thread is None:
            return
        while True:
            try:
                self._queue.put_nowait((text, language))
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                    log.info("speech behind; dropped %r", dropped[0])
                except queue.Empty:
                    pass

    def close(self, timeout=30.0):
        """Finish what is queued, then stop the worker."""
        if self._thread is None:
            return
        self._queue.put((None, None))
        self._thread.join(timeout)

    def _run(self):
        import pyttsx3
        engine = pyttsx3.init()
        if self.rate:
            engine.setProperty("rate", self.rate)
        _settle()   # the driver's start-up settings are still queued inside espeak
        finished = threading.Event()
        engine.connect("finished-utterance", lambda **_: finished.set())
        while True:
            text, language = self._queue.get()
            if text is None:
                break
            try:
                finished.clear()
                self._speak(engine, text, language)
                # pyttsx3's espeak driver returns from runAndWait while espeak is still
                # synthesising (asynchronously): wait for the end, or the next utterance
                # takes over this one's file name and audio buffer.
                finished.wait(UTTERANCE_TIMEOUT_S)
                _settle(engine)
            except (RuntimeError, OSError) as e:  # a missing voice or sound card must not stop greeting
                log.warning("speech failed: %s", e)

    def _speak(self, engine, text, language):
        engine.setProperty("voice", voice_for(language))
        if self.mode == "on":
            engine.say(text)
        else:
            path = self._next_path()
            engine.save_to_file(text, path)
            self.files.append(path)
        engine.runAndWait()

    def _next_path(self):
        """FILE.wav for the first utterance, then FILE-2.wav, FILE-3.wav, ..."""
        root, ext = os.path.splitext(self.mode)
        n = len(self.files) + 1
        return self.mode if n == 1 else f"{root}-{n}{ext or '.wav'}"


def _settle(engine=None, timeout_s=2.0):
    """Wait until both pyttsx3 and espeak itself are idle before the next utterance.

    pyttsx3's espeak driver starts every utterance by cancelling whatever espeak still has
    in hand (espeak_Cancel when IsPlaying). espeak queues parameter changes and finishes an
    utterance after announcing its end, so a start that comes too soon cancels that queue,
    and the cancel silences the *following* utterance: an empty WAV, a greeting never said.
    """
    playing = _espeak_playing()
    busy = engine.isBusy if engine is not None else (lambda: False)  # idle until it first runs
    deadline = time.monotonic() + timeout_s
    while (busy() or playing()) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(SETTLE_S)


def _espeak_playing():
    """espeak's own "still working" flag, or a constant False under another driver."""
    try:
        from pyttsx3.drivers import _espeak
        return lambda: bool(_espeak.IsPlaying())
    except (ImportError, OSError, AttributeError):
        return lambda: False
