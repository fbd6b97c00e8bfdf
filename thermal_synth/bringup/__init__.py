"""Bring-up: one description of each node graph (graph.py), run by the process
runner, the ROS 2 launch files and the preview alike.
"""
