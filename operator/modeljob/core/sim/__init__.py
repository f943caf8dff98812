"""Trace replay and queue simulation: what-if runs of the core's decisions, apart from the operator's own."""
