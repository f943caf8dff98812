"""Node scorers: one small pure function per scorer, combined as a normalised weighted sum."""
