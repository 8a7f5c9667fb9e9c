"""Test helpers that ship with vlir (a loopback OpenAI-compatible server), used by the test suite
and the benches. Nothing here is imported by the data or training code, but for
:mod:`vlir.testing.hold`, the hook the build executors call (inert unless a test sets it)."""
