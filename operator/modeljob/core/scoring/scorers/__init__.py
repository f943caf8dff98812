"""The node scorers, one module each; every module defines ``SCORER`` (see ``scoring.registry``)."""
