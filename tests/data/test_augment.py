"""The batched affine augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.config import AugmentConfig
from doodlelab.data.augment import (
    TTA_SHIFTS,
    random_affine,
    sample_inverse_maps,
    shift_images,
    tta_view,
    warp,
)


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.random((6, 784), dtype=np.float32)


def _eye(n):
    return np.tile(np.eye(2, dtype=np.float32), (n, 1, 1))


def test_identity_map_returns_the_image(images):
    out = warp(images, _eye(6), np.zeros((6, 2), np.float32))
    np.testing.assert_allclose(out, images, atol=1e-6)


@pytest.mark.parametrize("dr,dc", [(1, 0), (0, -3), (2, 2)])
def test_integer_shift_moves_pixels_and_fills_black(images, dr, dc):
    out = warp(images, _eye(6), np.tile(np.array([dr, dc], np.float32), (6, 1))).reshape(6, 28, 28)
    src = images.reshape(6, 28, 28)
    expected = np.zeros_like(src)
    expected[:, max(dr, 0):28 + min(dr, 0), max(dc, 0):28 + min(dc, 0)] = \
        src[:, max(-dr, 0):28 - max(dr, 0), max(-dc, 0):28 - max(dc, 0)]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_quarter_turn_rotates_the_grid(images):
    rot = np.array([[0, -1], [1, 0]], np.float32)  # inverse map of a 90-degree turn
    out = warp(images[:1], rot[None], np.zeros((1, 2), np.float32)).reshape(28, 28)
    np.testing.assert_allclose(out, np.rot90(images[0].reshape(28, 28), k=-1), atol=1e-5)


def test_random_affine_is_seeded_bounded_and_leaves_input_alone(images):
    cfg = AugmentConfig()
    before = images.copy()
    a = random_affine(images, cfg, np.random.default_rng(1))
    b = random_affine(images, cfg, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(images, before)
    assert a.dtype == np.float32 and a.shape == images.shape
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert not np.allclose(a, images)


def test_disabled_augmentation_is_a_no_op(images):
    assert random_affine(images, AugmentConfig(enabled=False), np.random.default_rng(0)) is images


def test_sampled_maps_respect_the_configured_ranges():
    cfg = AugmentConfig(shift=0.0, rotate=0.0, scale=0.2, shear=0.0)
    inv, shift = sample_inverse_maps(500, cfg, np.random.default_rng(0))
    zoom = 1 / inv[:, 0, 0]
    assert (np.abs(shift) == 0).all()
    assert np.allclose(inv[:, 0, 1], 0) and np.allclose(inv[:, 1, 0], 0)
    assert zoom.min() >= 0.8 - 1e-6 and zoom.max() <= 1.2 + 1e-6


def test_integer_shifts_move_whole_pixels_only(images):
    cfg = AugmentConfig(shift=2.0, rotate=0.0, scale=0.0, integer_shift=True)
    inv, shift = sample_inverse_maps(400, cfg, np.random.default_rng(0))
    assert set(np.unique(shift)) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    out = random_affine(images, cfg, np.random.default_rng(3))
    # A whole-pixel shift copies pixel values: nothing new is interpolated.
    assert np.isin(out, np.append(images, 0.0)).all()


def test_shift_images_matches_the_general_warp(images):
    rng = np.random.default_rng(5)
    d = rng.integers(-3, 4, (6, 2))
    fast = shift_images(images, d[:, 0], d[:, 1])
    slow = warp(images, _eye(6), d.astype(np.float32))
    np.testing.assert_allclose(fast, slow, atol=1e-6)


def test_pure_integer_shift_config_takes_the_gather_path(images):
    cfg = AugmentConfig(shift=2.0, rotate=0.0, scale=0.0, integer_shift=True)
    out = random_affine(images, cfg, np.random.default_rng(0))
    d = np.random.default_rng(0).integers(-2, 3, (6, 2))
    np.testing.assert_array_equal(out, shift_images(images, d[:, 0], d[:, 1]))


def test_tta_views_are_the_image_and_its_four_neighbours(images):
    views = [tta_view(images, shift) for shift in TTA_SHIFTS]
    assert len(views) == 5 and views[0] is images
    grid = images.reshape(6, 28, 28)
    np.testing.assert_array_equal(views[1].reshape(6, 28, 28)[:, 1:], grid[:, :-1])
    np.testing.assert_array_equal(views[4].reshape(6, 28, 28)[:, :, :-1], grid[:, :, 1:])


def test_shift_images_moves_a_hand_placed_pixel_and_fills_black():
    img = np.zeros((2, 784), dtype=np.uint8)
    img[0, 0 * 28 + 0] = 7  # top-left corner
    img[1, 10 * 28 + 20] = 9  # row 10, column 20
    out = shift_images(img, np.array([2, -1]), np.array([1, 2])).reshape(2, 28, 28)
    assert out.dtype == np.uint8 and out.shape == (2, 28, 28)
    assert out[0, 2, 1] == 7 and np.count_nonzero(out[0]) == 1  # 2 rows down, 1 column right
    assert out[1, 9, 22] == 9 and np.count_nonzero(out[1]) == 1  # 1 row up, 2 columns right
    edge = np.full((1, 784), 5, dtype=np.float32)
    moved = shift_images(edge, np.array([-2]), np.array([0])).reshape(28, 28)
    assert (moved[:26] == 5).all() and (moved[26:] == 0).all()  # what enters from below is black
