"""Browser app: `python -m audio_dl.app` (see audio_dl/app/server.py)."""
