"""The agent loop: sample rows (suspects first), judge, verify, look closer, stop on budget."""
