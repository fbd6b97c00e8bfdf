"""QoS for image streams, following REP-2003.

Drivers publish reliable and consumers subscribe best-effort: a reliable publisher matches
both reliable and best-effort subscribers, so `ros2 topic echo`, rqt_image_view and our own
sensor-data subscribers all receive, while a best-effort publisher would silently starve the
reliable ones (the flir_boson_usb README warns about exactly that).
"""

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

STREAM_DEPTH = 5

STREAM_SUBSCRIBER_QOS = qos_profile_sensor_data
"""KEEP_LAST 5, BEST_EFFORT, VOLATILE: late frames are worthless, never queue them."""


def stream_publisher_qos(reliability: str) -> QoSProfile:
    """Publisher QoS from a `reliability` parameter value, for users who must match odd subscribers."""
    policies = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
    if reliability not in policies:
        raise ValueError(f"reliability must be one of {sorted(policies)}, got {reliability!r}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=STREAM_DEPTH,
        reliability=policies[reliability],
        durability=DurabilityPolicy.VOLATILE,
    )


STREAM_PUBLISHER_QOS = stream_publisher_qos("reliable")
