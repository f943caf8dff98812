"""I/O at the edges: each module translates one kind of outside world once and calls the core."""
