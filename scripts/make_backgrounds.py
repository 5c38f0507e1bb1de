"""Draw the prepared backgrounds into vtpose/studio/avatar/assets/backgrounds/ (run once; the PNGs are committed).

    .venv/bin/python scripts/make_backgrounds.py

Each scene is 1280x720 and puts its floor (or ground) under the line where whole-body avatars stand
(`FLOOR_FRACTION` of the height). Drawn procedurally with a fixed seed, so rerunning gives the same files.
"""

from __future__ import annotations

import cv2
import numpy as np

from vtpose.overlay import write_image
from vtpose.studio.avatar.scene import BACKGROUNDS_DIR, FLOOR_FRACTION

WIDTH, HEIGHT = 1280, 720
SEED = 7
# Where the floor meets the wall (or the sea the sky...), a fraction of the height; below FLOOR_FRACTION.
HORIZON_FRACTION = 0.62


def _vertical_gradient(top: tuple[int, int, int], bottom: tuple[int, int, int], height: int) -> np.ndarray:
    """(height, WIDTH, 3) uint8 BGR going from `top` to `bottom` colour."""
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    rows = (1 - t) * np.array(top, dtype=np.float64) + t * np.array(bottom, dtype=np.float64)
    return np.repeat(rows, WIDTH, axis=1).round().astype(np.uint8)


def studio() -> np.ndarray:
    """A cosy streaming room: pastel wall, window with a night sky, shelf with plants, wooden floor, neon strip."""
    horizon = int(HEIGHT * HORIZON_FRACTION)
    img = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    img[:horizon] = _vertical_gradient((225, 200, 235), (205, 180, 220), horizon)  # lilac wall (BGR)
    img[horizon:] = _vertical_gradient((95, 130, 175), (60, 90, 130), HEIGHT - horizon)  # wooden floor
    for x in range(-400, WIDTH + 400, 110):  # floor boards converging to the back
        cv2.line(img, (WIDTH // 2 + (x - WIDTH // 2) // 3, horizon), (x, HEIGHT), (55, 80, 115), 2, cv2.LINE_AA)
    cv2.rectangle(img, (0, horizon - 12), (WIDTH, horizon), (235, 225, 240), -1)  # skirting board
    # Window with a night sky and a moon.
    x0, y0, x1, y1 = 110, 90, 430, 330
    img[y0:y1, x0:x1] = _vertical_gradient((90, 40, 30), (140, 80, 60), y1 - y0)[:, : x1 - x0]
    rng = np.random.default_rng(SEED)
    for _ in range(40):
        cv2.circle(
            img,
            (int(rng.integers(x0 + 5, x1 - 5)), int(rng.integers(y0 + 5, y1 - 5))),
            1,
            (230, 240, 255),
            -1,
            cv2.LINE_AA,
        )
    cv2.circle(img, (360, 150), 28, (200, 240, 255), -1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y0), (x1, y1), (250, 245, 250), 14, cv2.LINE_AA)
    cv2.line(img, ((x0 + x1) // 2, y0), ((x0 + x1) // 2, y1), (250, 245, 250), 10, cv2.LINE_AA)
    # Shelf with plants and books on the right.
    cv2.rectangle(img, (880, 250), (1180, 266), (120, 150, 190), -1, cv2.LINE_AA)
    for i, color in enumerate([(90, 90, 220), (200, 140, 80), (80, 190, 230), (160, 110, 200)]):
        cv2.rectangle(img, (900 + i * 26, 170 + (i % 2) * 12), (922 + i * 26, 250), color, -1, cv2.LINE_AA)
    cv2.rectangle(img, (1060, 205), (1110, 250), (70, 110, 200), -1, cv2.LINE_AA)  # pot
    for angle in (-50, -20, 10, 40):
        tip = (1085 + int(60 * np.sin(np.radians(angle))), 205 - int(60 * np.cos(np.radians(angle))))
        cv2.ellipse(
            img, ((1085 + tip[0]) // 2, (205 + tip[1]) // 2), (10, 34), angle, 0, 360, (90, 170, 80), -1, cv2.LINE_AA
        )
    # Neon strip where the wall meets the ceiling, and its glow.
    glow = np.zeros_like(img)
    cv2.line(glow, (0, 24), (WIDTH, 24), (255, 120, 255), 10, cv2.LINE_AA)
    img = cv2.add(img, cv2.GaussianBlur(glow, (0, 0), 12))
    cv2.line(img, (0, 24), (WIDTH, 24), (255, 200, 255), 4, cv2.LINE_AA)
    return img


def beach() -> np.ndarray:
    """A sunny beach: sky, sun, sea with wave lines, sand where the avatars stand."""
    horizon = int(HEIGHT * 0.5)
    shore = int(HEIGHT * HORIZON_FRACTION)
    img = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    img[:horizon] = _vertical_gradient((235, 170, 90), (250, 225, 185), horizon)
    img[horizon:shore] = _vertical_gradient((190, 140, 40), (200, 170, 60), shore - horizon)
    img[shore:] = _vertical_gradient((150, 210, 240), (120, 185, 225), HEIGHT - shore)
    cv2.circle(img, (1040, 120), 60, (120, 230, 255), -1, cv2.LINE_AA)
    for cx, cy, s in ((250, 110, 1.0), (600, 70, 0.7), (820, 170, 0.8)):  # clouds
        for dx, dy, r in ((0, 0, 34), (38, -14, 40), (80, 0, 32), (40, 10, 30)):
            cv2.circle(img, (int(cx + dx * s), int(cy + dy * s)), int(r * s), (255, 255, 255), -1, cv2.LINE_AA)
    for y in range(horizon + 12, shore, 18):  # wave glints
        for x in range(20 + (y * 7) % 90, WIDTH, 160):
            cv2.line(img, (x, y), (x + 40, y), (230, 210, 150), 2, cv2.LINE_AA)
    cv2.ellipse(img, (WIDTH // 2, shore + 4), (WIDTH, 14), 0, 180, 360, (240, 240, 245), -1, cv2.LINE_AA)  # surf
    rng = np.random.default_rng(SEED)
    for _ in range(500):  # sand grains
        x, y = int(rng.integers(0, WIDTH)), int(rng.integers(shore + 10, HEIGHT))
        cv2.circle(img, (x, y), 1, (110, 170, 210), -1, cv2.LINE_AA)
    return img


def city_night() -> np.ndarray:
    """A city at night: starry gradient sky, skyline with lit windows, a street where the avatars stand."""
    horizon = int(HEIGHT * HORIZON_FRACTION)
    img = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    img[:horizon] = _vertical_gradient((70, 25, 30), (150, 60, 120), horizon)
    img[horizon:] = _vertical_gradient((70, 60, 60), (45, 38, 40), HEIGHT - horizon)
    rng = np.random.default_rng(SEED)
    for _ in range(120):
        cv2.circle(
            img, (int(rng.integers(0, WIDTH)), int(rng.integers(0, horizon // 2))), 1, (230, 235, 255), -1, cv2.LINE_AA
        )
    cv2.circle(img, (180, 110), 40, (210, 240, 255), -1, cv2.LINE_AA)
    x = 0
    while x < WIDTH:
        w = int(rng.integers(70, 150))
        top = int(rng.integers(int(HEIGHT * 0.22), int(HEIGHT * 0.48)))
        shade = int(rng.integers(35, 60))
        cv2.rectangle(img, (x, top), (x + w - 6, horizon), (shade + 20, shade, shade), -1)
        for wy in range(top + 14, horizon - 14, 22):
            for wx in range(x + 10, x + w - 18, 20):
                if rng.random() < 0.45:
                    cv2.rectangle(img, (wx, wy), (wx + 9, wy + 11), (120, 220, 255), -1)
        x += w
    cv2.rectangle(img, (0, horizon), (WIDTH, horizon + 10), (120, 120, 130), -1)  # kerb
    for lx in range(60, WIDTH, 240):  # dashed lane marking
        cv2.line(img, (lx, int(HEIGHT * 0.8)), (lx + 120, int(HEIGHT * 0.8)), (170, 200, 220), 5, cv2.LINE_AA)
    return img


SCENES = {"studio": studio, "beach": beach, "city-night": city_night}


def main() -> None:
    """Write every scene as a PNG and print its size."""
    if HORIZON_FRACTION >= FLOOR_FRACTION:
        raise ValueError(f"HORIZON_FRACTION={HORIZON_FRACTION} must be below FLOOR_FRACTION={FLOOR_FRACTION}")
    BACKGROUNDS_DIR.mkdir(parents=True, exist_ok=True)
    for name, draw in SCENES.items():
        path = write_image(BACKGROUNDS_DIR / f"{name}.png", draw())
        print(f"{path}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
