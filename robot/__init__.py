"""The robot receptionist: the shared device runtime (device/) with a voice instead of a screen.

Greets by name in the citizen's language, asks for a blink, tells the next step from the case
file, and says a queue ticket number for every visit; unknown visitors are told where to go.
"""
