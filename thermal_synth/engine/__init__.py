"""The ROS-free synthesis engine: a heatmap in, a painted frame out (preprocessing,
inference, appearance transitions, output pacing, the webcam sink).
"""
