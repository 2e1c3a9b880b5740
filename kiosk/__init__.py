"""The kiosk: an edge agent with a screen, a thin program over the face engine (recognition/).

camera (frames) -> greeter (tracks, votes, one greeting per visit) -> agent (sessions into
the outbox, events, front end hooks) -> sync (gallery deltas in, sessions out) and the front
end (screen, speech). The robot receptionist reuses Agent with its own front end.
"""
