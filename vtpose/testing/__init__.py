"""Helpers the tests and benchmarks share (a Bento server on loopback, a headless Chromium with a fake camera,
the scan of the studio's web files against OBS's Chromium).

Nothing users import: these start real servers and browsers for measurements and end-to-end checks.
"""
