"""Recording: pairing thermal and RGB frames, writing them to rosbag2 bags (bags/),
the recording session and its CLI.
"""
