"""The 345 official Quick, Draw! class names and the check of names a user gives."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable

from doodlelab.errors import UserError

LIST_HINT = "see `doodlelab fetch --list` for the 345 class names"

# The 345 official categories, as in googlecreativelab/quickdraw-dataset's categories.txt
# (case and hyphens matter: they are the file names on the server).
QUICKDRAW_CLASSES: tuple[str, ...] = (
    "aircraft carrier", "airplane", "alarm clock", "ambulance", "angel", "animal migration", "ant",
    "anvil", "apple", "arm", "asparagus", "axe", "backpack", "banana", "bandage", "barn", "baseball",
    "baseball bat", "basket", "basketball", "bat", "bathtub", "beach", "bear", "beard", "bed", "bee",
    "belt", "bench", "bicycle", "binoculars", "bird", "birthday cake", "blackberry", "blueberry",
    "book", "boomerang", "bottlecap", "bowtie", "bracelet", "brain", "bread", "bridge", "broccoli",
    "broom", "bucket", "bulldozer", "bus", "bush", "butterfly", "cactus", "cake", "calculator",
    "calendar", "camel", "camera", "camouflage", "campfire", "candle", "cannon", "canoe", "car",
    "carrot", "castle", "cat", "ceiling fan", "cello", "cell phone", "chair", "chandelier", "church",
    "circle", "clarinet", "clock", "cloud", "coffee cup", "compass", "computer", "cookie", "cooler",
    "couch", "cow", "crab", "crayon", "crocodile", "crown", "cruise ship", "cup", "diamond",
    "dishwasher", "diving board", "dog", "dolphin", "donut", "door", "dragon", "dresser", "drill",
    "drums", "duck", "dumbbell", "ear", "elbow", "elephant", "envelope", "eraser", "eye", "eyeglasses",
    "face", "fan", "feather", "fence", "finger", "fire hydrant", "fireplace", "firetruck", "fish",
    "flamingo", "flashlight", "flip flops", "floor lamp", "flower", "flying saucer", "foot", "fork",
    "frog", "frying pan", "garden", "garden hose", "giraffe", "goatee", "golf club", "grapes", "grass",
    "guitar", "hamburger", "hammer", "hand", "harp", "hat", "headphones", "hedgehog", "helicopter",
    "helmet", "hexagon", "hockey puck", "hockey stick", "horse", "hospital", "hot air balloon",
    "hot dog", "hot tub", "hourglass", "house", "house plant", "hurricane", "ice cream", "jacket",
    "jail", "kangaroo", "key", "keyboard", "knee", "knife", "ladder", "lantern", "laptop", "leaf",
    "leg", "light bulb", "lighter", "lighthouse", "lightning", "line", "lion", "lipstick", "lobster",
    "lollipop", "mailbox", "map", "marker", "matches", "megaphone", "mermaid", "microphone",
    "microwave", "monkey", "moon", "mosquito", "motorbike", "mountain", "mouse", "moustache", "mouth",
    "mug", "mushroom", "nail", "necklace", "nose", "ocean", "octagon", "octopus", "onion", "oven",
    "owl", "paintbrush", "paint can", "palm tree", "panda", "pants", "paper clip", "parachute",
    "parrot", "passport", "peanut", "pear", "peas", "pencil", "penguin", "piano", "pickup truck",
    "picture frame", "pig", "pillow", "pineapple", "pizza", "pliers", "police car", "pond", "pool",
    "popsicle", "postcard", "potato", "power outlet", "purse", "rabbit", "raccoon", "radio", "rain",
    "rainbow", "rake", "remote control", "rhinoceros", "rifle", "river", "roller coaster",
    "rollerskates", "sailboat", "sandwich", "saw", "saxophone", "school bus", "scissors", "scorpion",
    "screwdriver", "sea turtle", "see saw", "shark", "sheep", "shoe", "shorts", "shovel", "sink",
    "skateboard", "skull", "skyscraper", "sleeping bag", "smiley face", "snail", "snake", "snorkel",
    "snowflake", "snowman", "soccer ball", "sock", "speedboat", "spider", "spoon", "spreadsheet",
    "square", "squiggle", "squirrel", "stairs", "star", "steak", "stereo", "stethoscope", "stitches",
    "stop sign", "stove", "strawberry", "streetlight", "string bean", "submarine", "suitcase", "sun",
    "swan", "sweater", "swing set", "sword", "syringe", "table", "teapot", "teddy-bear", "telephone",
    "television", "tennis racquet", "tent", "The Eiffel Tower", "The Great Wall of China",
    "The Mona Lisa", "tiger", "toaster", "toe", "toilet", "tooth", "toothbrush", "toothpaste",
    "tornado", "tractor", "traffic light", "train", "tree", "triangle", "trombone", "truck", "trumpet",
    "t-shirt", "umbrella", "underwear", "van", "vase", "violin", "washing machine", "watermelon",
    "waterslide", "whale", "wheel", "windmill", "wine bottle", "wine glass", "wristwatch", "yoga",
    "zebra", "zigzag",
)

_KNOWN = frozenset(QUICKDRAW_CLASSES)


def _suggestions(name: str) -> list[str]:
    by_lower = {c.lower(): c for c in QUICKDRAW_CLASSES}
    key = " ".join(name.lower().split())
    if key in by_lower:
        return [by_lower[key]]
    return [by_lower[m] for m in difflib.get_close_matches(key, list(by_lower), n=3, cutoff=0.75)]


def check_class_names(names: Iterable[str] | str, allow_unknown: bool = False) -> list[str]:
    """Return ``names`` as a list after checking them: official (unless allowed), unique, file-safe."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise UserError(f"no classes given; name at least one Quick, Draw! class ({LIST_HINT})")
    for name in names:
        if not isinstance(name, str):
            raise UserError(f"class names must be strings (got {name!r})")
        if (
            not name
            or name != name.strip()
            or name in (".", "..")
            or any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in name)
        ):
            raise UserError(
                f"{name!r} is not a usable class name: it becomes the file name <name>.npy, so it must be "
                "non-empty, without slashes, control characters or surrounding spaces"
            )
    twice = [n for n, k in Counter(names).items() if k > 1]
    if twice:
        raise UserError(f"class {twice[0]!r} is listed more than once; each class gets one label")
    unknown = [n for n in names if n not in _KNOWN]
    if unknown and not allow_unknown:
        described = []
        for name in unknown:
            close = _suggestions(name)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            described.append(f"{name!r}{hint}")
        noun = "class" if len(unknown) == 1 else "classes"
        raise UserError(
            f"unknown Quick, Draw! {noun} {', '.join(described)}; {LIST_HINT}, "
            "or pass --allow-unknown for a server with other classes"
        )
    return names
