"""Task class lists and the explicit alias table for dataset class names."""

from __future__ import annotations

TASK_CLASSES: dict[str, list[str]] = {
    # RTTS / VOCh (paper Sec. 4.1)
    "haze": ["bicycle", "bus", "car", "motorbike", "person"],
    # ExDark / VOCd
    "dark": ["bicycle", "boat", "bottle", "bus", "car", "cat", "chair", "dog", "motorbike", "person"],
    # CIFAR-10, standard order
    "classify": [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
}

# Names that datasets use for our classes. Keys are lower-case; lookup lower-cases too.
ALIASES: dict[str, str] = {
    "motorcycle": "motorbike",
    "motorbikes": "motorbike",
    "people": "person",
    "pedestrian": "person",
    "persons": "person",
    "bike": "bicycle",
    "cars": "car",
    "buses": "bus",
}

# Names that are real classes of the detection datasets we read (VOC's 20, ExDark's 12),
# just not in every task: their boxes are "ignored" for a task that does not list them.
# Any other name (DAWN's "truck", a typo) is "unknown": reported separately so the user
# can add an alias (prepare.aliases: {truck: car}) if that was the intent.
KNOWN_NAMES: set[str] = {
    *TASK_CLASSES["haze"],
    *TASK_CLASSES["dark"],
    "aeroplane",
    "bird",
    "cow",
    "diningtable",
    "horse",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
    "cup",
    "table",
}


def canonical(name: str, extra_aliases: dict[str, str] | None = None) -> str:
    """Map a dataset's class name to ours: strip, lower-case, apply aliases."""
    key = name.strip().lower()
    if extra_aliases:
        lowered = {k.lower(): v for k, v in extra_aliases.items()}
        if key in lowered:
            return lowered[key]
    return ALIASES.get(key, key)
