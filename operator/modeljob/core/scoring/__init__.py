"""Node scorers: one small pure function per scorer, combined as a normalised weighted sum.

``filters`` says which nodes can run a pod at all and why the others cannot; each scorer module
(``least_allocated``, ``most_allocated``, ``best_fit``, ``gpu_fragmentation``, ``cpu_balance``,
``cost``, ``round_robin``, ``random_order``) scores the feasible nodes 0..1; ``weights`` holds the
weights (the operator's settings map to ``ScoringWeights``) and the default; ``ranking`` combines
them into one decision, ties broken by node name, with the reason.
"""
