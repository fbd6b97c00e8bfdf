"""The simulated rig's datasets (simulate.py) and their reports."""
