"""Helpers the tests and benchmarks share (a Bento server on loopback, a headless Chromium with a fake camera).

Nothing users import: these start real servers and browsers for measurements and end-to-end checks.
"""
