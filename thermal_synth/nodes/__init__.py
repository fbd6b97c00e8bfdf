"""ROS 2 nodes: thin wiring of topics, parameters, services and diagnostics to the
ROS-free objects of engine/ and recording/.
"""
