"""The edge runtime every device shares, over the one face engine (recognition/).

camera (frames) -> greeter (tracks, votes, one greeting per visit) -> agent (sessions into the
outbox, events, front-end hooks) -> sync (gallery deltas in, sessions out through client) and a
front end (the kiosk's screen and voice, or the robot's voice). casefile.py is the step after
the greeting: the blink challenge (liveness_step.py), then the case file; store.py the local
SQLite file; speech.py and phrases.py what is said; cli.py the options both devices share.
"""
