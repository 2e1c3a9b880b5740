"""The kiosk: the shared device runtime (device/) with a screen and a voice.

screen.py serves the kiosk's own page on 127.0.0.1 (kiosk/templates, kiosk/static);
presenter.py is what the citizen sees and hears; casefile_screen.py the case file on screen.
"""
