"""Pages in a real browser (headless Chromium): see conftest.py and harness.py."""
