"""What a `device` parameter means to OpenCV, shared by the PureThermal source and the rgb_camera node.

Both nodes take the same values: `"0"` (an index, /dev/video0), a device path such as
/dev/v4l/by-id/..., and for rgb_camera also a video file or stream URL. Keeping one parser and one
opener means a value that works for one node works the same way for the other.
"""

from __future__ import annotations

import os
import sys

import cv2

VIDEO_GROUP_HINT = "add your user to the 'video' group (sudo usermod -aG video $USER, then log in again)"


def parse_device(device: str) -> int | str:
    """`"0"` means /dev/video0 (OpenCV index), anything else is a path such as /dev/v4l/by-id/..."""
    text = device.strip()
    return int(text) if text.isdigit() else text


def is_stream_url(device: int | str) -> bool:
    return isinstance(device, str) and "://" in device


def is_v4l2_device(device: int | str) -> bool:
    """Indices and /dev paths are cameras; everything else is a file or URL for OpenCV's FFmpeg backend."""
    return isinstance(device, int) or device.startswith("/dev/")


def is_local_file(device: int | str) -> bool:
    """A regular file ends; a camera or a stream that stops delivering has been lost."""
    return isinstance(device, str) and not is_stream_url(device) and os.path.isfile(device)


def open_capture(device: int | str, backend: int | None = None) -> cv2.VideoCapture:
    """V4L2 for cameras (FFmpeg would open /dev/video* too, but ignore every CAP_PROP request)."""
    # OpenCV's own warnings for a missing device would precede our one clear error line.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    if backend is None:
        on_linux = sys.platform.startswith("linux")
        backend = cv2.CAP_V4L2 if on_linux and is_v4l2_device(device) else cv2.CAP_ANY
    return cv2.VideoCapture(device, backend)


def explain_open_failure(device: int | str) -> str:
    """Why OpenCV most likely refused `device`, as the check a user should do next.

    OpenCV only says "not opened"; telling a missing device from a permission problem or a busy one
    is what saves a user the search.
    """
    if is_stream_url(device):
        return f"cannot open stream {device!r}: check the URL and that the server is reachable"
    path = f"/dev/video{device}" if isinstance(device, int) else device
    if not os.path.exists(path):
        return (
            f"cannot open {device!r}: {path} does not exist (camera unplugged or a typo? "
            "`v4l2-ctl --list-devices` lists cameras)"
        )
    if os.path.isfile(path):
        if not os.access(path, os.R_OK):
            return f"cannot open {device!r}: the file is not readable (permissions)"
        return f"cannot open {device!r}: OpenCV cannot decode this file (unsupported container or codec?)"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"cannot open {device!r}: permission denied on {path}; {VIDEO_GROUP_HINT}"
    return (
        f"cannot open {device!r}: {path} exists but will not stream; is it busy in another program "
        f"(`fuser {path}`), or a metadata node (try the camera's other /dev/video*)?"
    )
