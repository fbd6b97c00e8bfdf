"""Pair bags: thermal/RGB(/mask) training pairs recorded as rosbag2 directories, without rclpy.

The `pair_recorder` node writes them through `PairBagWriter`; the dataset builder reads them through
`PairBagReader`; `thermal-synth bag info|repair` inspects and mends them. Everything goes through the
`rosbags` library, so a laptop without ROS handles the same bags that Humble's `ros2 bag` plays
(metadata version 8, MCAP or sqlite3).

Bags may come from strangers: sizes are checked before anything is allocated, nothing is unpickled,
and one bad message is reported and skipped rather than aborting a read.

The modules, each importing only those listed before it:

* `labels`: session labels, options, errors and the CDR of the messages a bag holds.
* `metadata`: metadata.yaml and what it says about each storage file.
* `storage`: one storage file, written by its own rosbags Writer and flushed while open.
* `layout`: `inspect_bag`, what is on disk and what a crash left unfinished.
* `salvage`: every complete message of a storage file, without trusting its index.
* `reader`: `PairBagReader` and `bag_info`.
* `repair`: `repair_bag`.
* `writer`: `PairBagWriter`, and the on-disk layout that lets a recording survive a crash.
"""

from thermal_synth.recording.bags.labels import (
    CUSTOM_DATA_PREFIX,
    DEFAULT_OPTIONS,
    IMAGE_TYPE,
    STORAGES,
    STRING_TYPE,
    BagOptions,
    BagReadError,
    BagRepairError,
    BagWriteError,
    SessionLabels,
    image_cdr,
)
from thermal_synth.recording.bags.layout import BagLayout, inspect_bag
from thermal_synth.recording.bags.metadata import METADATA_VERSION, STAGING_DIR
from thermal_synth.recording.bags.reader import (
    PAIR_LOOKAHEAD,
    BagInfo,
    PairBagReader,
    RecordedPair,
    TopicSummary,
    bag_info,
)
from thermal_synth.recording.bags.repair import RepairReport, repair_bag
from thermal_synth.recording.bags.salvage import SalvagedMessage, salvage_messages
from thermal_synth.recording.bags.writer import BagSummary, PairBagWriter

__all__ = [
    "CUSTOM_DATA_PREFIX",
    "DEFAULT_OPTIONS",
    "IMAGE_TYPE",
    "METADATA_VERSION",
    "PAIR_LOOKAHEAD",
    "STAGING_DIR",
    "STORAGES",
    "STRING_TYPE",
    "BagInfo",
    "BagLayout",
    "BagOptions",
    "BagReadError",
    "BagRepairError",
    "BagSummary",
    "BagWriteError",
    "PairBagReader",
    "PairBagWriter",
    "RecordedPair",
    "RepairReport",
    "SalvagedMessage",
    "SessionLabels",
    "TopicSummary",
    "bag_info",
    "image_cdr",
    "inspect_bag",
    "repair_bag",
    "salvage_messages",
]
