"""The pure core: plain frozen values in, decisions with reasons out; no I/O, clock or env."""
