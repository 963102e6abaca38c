"""Fixtures shared by several test modules."""

from tests.judge_sim_fixture import judge_sim  # noqa: F401  (the simulated judge, bench/judge_sim.py)
