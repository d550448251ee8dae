"""Frontal cartoon faces with class-dependent expressions, drawn with OpenCV.

The face is built from simple parametric parts (egg-shaped head with radial shading, hair, ears, neck,
almond-shaped eyes bounded by Bezier eyelids, irises, eyebrows, nose, two-lip mouth) so that the
expression of each emotion class follows the facial action units a human would read:

- happy: lip corners pulled up (AU12), cheeks raised and lower lids pushed up (AU6), teeth visible;
- sad: lip corners pulled down (AU15), inner brow ends raised (AU1), drooping upper lids;
- angry: brows lowered and drawn together (AU4), narrowed eyes (AU7), lips pressed thin (AU24);
- neutral: level brows, relaxed straight mouth.

Drawing happens at 4x the requested size and is downsampled with area interpolation, which gives
smooth anti-aliased edges at the tiny frame sizes used by the demo corpus. Per-speaker identity
(skin tone, face shape, eye spacing, hair, colours) comes from the ``style`` dict; per-frame
jitter (head position, brightness) comes from the caller's ``numpy.random.Generator`` and is
applied to a cached, centred drawing, so a clip costs a few drawings plus one cheap warp per frame.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

EMOTIONS = ("neutral", "happy", "sad", "angry")

DEFAULT_STYLE: dict = {
    "skin": (224, 182, 150),  # RGB
    "face_width": 1.0,  # multiplies the head half-width
    "face_height": 1.0,  # multiplies the head half-height
    "eye_spacing": 1.0,  # multiplies the distance between the eyes
    "hair_colour": (70, 45, 30),
    "hair_style": "short",  # short | long | band | crop | none
    "band_colour": (200, 60, 60),  # headband, only for hair_style "band"
    "iris_colour": (90, 60, 40),
    "lip_colour": (180, 90, 90),
    "brow_colour": None,  # None = darker version of the hair colour
    "background": (200, 210, 220),
    "shirt_colour": (60, 90, 140),
}

_SS = 4  # supersampling factor
_MOUTH_LEVELS = 20  # mouth_open quantisation steps (enables caching of drawn stills)

# Expression parameters per class. Units are fractions of the frame size unless noted.
#   smile: lip-corner lift (+ up / - down); brow_in/brow_out: vertical offset of the inner/outer
#   brow ends (+ down); eye_open: upper-lid height scale; lower_lid: lower-lid height scale (<1 =
#   raised cheeks); lid_tilt: upper-lid slant (+ lowers the inner corner, angry; - lowers the outer
#   corner, sad); lip: lip thickness scale; base_open: mouth opening regardless of audio (teeth).
_EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": dict(smile=0.0, brow_in=0.0, brow_out=0.0, brow_arch=0.010, eye_open=1.0,
                    lower_lid=1.0, lid_tilt=0.0, lip=1.0, base_open=0.0, mouth_w=1.0, cheek=0.0),
    "happy": dict(smile=0.045, brow_in=-0.012, brow_out=-0.012, brow_arch=0.018, eye_open=0.95,
                  lower_lid=0.45, lid_tilt=0.0, lip=0.9, base_open=0.35, mouth_w=1.22, cheek=1.0),
    "sad": dict(smile=-0.032, brow_in=-0.030, brow_out=0.012, brow_arch=-0.004, eye_open=0.72,
                lower_lid=1.0, lid_tilt=-0.45, lip=1.05, base_open=0.0, mouth_w=0.9, cheek=0.0),
    "angry": dict(smile=-0.012, brow_in=0.035, brow_out=-0.012, brow_arch=0.0, eye_open=0.62,
                  lower_lid=0.75, lid_tilt=0.55, lip=0.45, base_open=0.0, mouth_w=0.92, cheek=0.0),
}


def _bezier(p0, c, p1, n: int = 20) -> np.ndarray:
    """Points of the quadratic Bezier p0 -> p1 that passes through ``c`` at its midpoint."""
    p0, c, p1 = (np.asarray(p, dtype=np.float64) for p in (p0, c, p1))
    ctrl = 2.0 * c - 0.5 * (p0 + p1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t**2 * p1


def _pts(a) -> np.ndarray:
    return np.round(np.asarray(a)).astype(np.int32).reshape(-1, 1, 2)


def _shade(colour, factor: float) -> tuple[int, int, int]:
    return tuple(min(255, max(0, int(v * factor))) for v in colour)


def _ellipse(img, centre, axes, colour, start: float = 0, end: float = 360,
             thickness: int = -1) -> None:
    """cv2.ellipse with float geometry (rounded to the supersampled pixel grid)."""
    cv2.ellipse(img, (int(centre[0]), int(centre[1])), (int(axes[0]), int(axes[1])), 0, start, end,
                colour, thickness, cv2.LINE_AA)


def _paint_inside(img: np.ndarray, outline: np.ndarray, draw) -> None:
    """Run ``draw(canvas, origin)`` on a copy of the outline's bounding box and keep only the
    pixels inside ``outline``; a hard mask is enough because the final downsampling anti-aliases."""
    x0, y0 = np.maximum(np.floor(outline.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(outline.max(axis=0)).astype(int) + 2, img.shape[1::-1])
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1]
    canvas = roi.copy()
    draw(canvas, np.array([x0, y0]))
    mask = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(mask, [_pts(outline - [x0, y0])], 1)
    np.copyto(roi, canvas, where=mask[..., None].astype(bool))


def _egg(cx, cy, hw, hh, taper: float = 0.16, n: int = 72) -> np.ndarray:
    """Head outline: an ellipse whose lower half narrows toward the chin."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    narrow = 1.0 - taper * np.clip(np.sin(t), 0, None) ** 2
    return np.stack([cx + hw * np.cos(t) * narrow, cy + hh * np.sin(t)], axis=1)


def _draw_eye(img, centre, half_w, half_h, side, expr, style, scale):
    """Draw one eye (socket shadow, sclera, iris, pupil, lids); ``side`` is -1 left, +1 right."""
    cx, cy = centre
    inner = np.array([cx - side * half_w, cy])  # inner corner points toward the nose
    outer = np.array([cx + side * half_w, cy + 0.1 * half_h])
    tilt = expr["lid_tilt"] * half_h
    # Tilt > 0 lowers the inner end of the upper lid (anger), < 0 the outer end (sadness).
    inner_u = inner + [0, max(tilt, 0) * 0.9]
    outer_u = outer + [0, max(-tilt, 0) * 0.9]
    upper_mid = (cx + side * tilt * 0.5, cy - half_h * expr["eye_open"] + abs(tilt) * 0.3)
    upper = _bezier(inner_u, upper_mid, outer_u)
    lower = _bezier(outer, (cx, cy + 0.8 * half_h * expr["lower_lid"]), inner)

    # Socket shadow: eyes darker than cheeks is the main cue face detectors (and people) use.
    skin = style["skin"]
    _ellipse(img, (cx, cy - 0.25 * half_h), (half_w * 1.4, half_h * 1.9), _shade(skin, 0.86))

    gaze_dy = 0.25 * half_h if expr["lid_tilt"] < 0 else 0.0  # sad faces look slightly down
    iris_r = int(half_h * 1.05)
    ic = np.array([cx - side * 0.05 * half_w, cy + gaze_dy])

    def draw(canvas, origin):
        canvas[:] = (246, 243, 240)
        c = tuple(np.round(ic - origin).astype(int))
        cv2.circle(canvas, c, iris_r, style["iris_colour"], -1)
        cv2.circle(canvas, c, iris_r, _shade(style["iris_colour"], 0.55), max(1, int(0.6 * scale)))
        cv2.circle(canvas, c, int(iris_r * 0.48), (12, 10, 10), -1)
        glint = (c[0] + iris_r // 3, c[1] - iris_r // 3)
        cv2.circle(canvas, glint, max(1, iris_r // 4), (255, 255, 255), -1)

    _paint_inside(img, np.concatenate([upper, lower]), draw)
    # The heavy upper lid line reads as lashes; the lower lid is faint.
    cv2.polylines(img, [_pts(upper)], False, (35, 25, 25), max(2, int(2.0 * scale)), cv2.LINE_AA)
    cv2.polylines(img, [_pts(lower)], False, _shade(skin, 0.62), max(1, int(0.7 * scale)), cv2.LINE_AA)
    crease = _bezier(inner_u - [0, 0.45 * half_h], (upper_mid[0], upper_mid[1] - 0.5 * half_h),
                     outer_u - [0, 0.4 * half_h])
    cv2.polylines(img, [_pts(crease)], False, _shade(skin, 0.72), max(1, int(0.6 * scale)), cv2.LINE_AA)


def _draw_mouth(img, cx, my, half_w, expr, mouth_open, style, S):
    """Draw the lips and, when open, the mouth cavity with upper teeth; corners follow ``smile``."""
    smile = expr["smile"] * S
    opening = min(1.0, expr["base_open"] + (1.0 - 0.5 * expr["base_open"]) * mouth_open)
    open_h = opening * 0.075 * S
    lip_t = expr["lip"] * 0.02 * S
    # Corners move while the lip centre stays put, so the mouth line bends into a U or an arch.
    left = np.array([cx - half_w, my - smile])
    right = np.array([cx + half_w, my - smile])
    inner_up = _bezier(left, (cx, my - 0.3 * open_h), right)
    inner_lo = _bezier(right, (cx, my + 0.7 * open_h + 0.3 * smile), left)
    outer_up = _bezier(left, (cx, my - 0.3 * open_h - lip_t), right)
    outer_lo = _bezier(right, (cx, my + 0.7 * open_h + 0.3 * smile + 1.3 * lip_t), left)

    cv2.fillPoly(img, [_pts(np.concatenate([outer_up, outer_lo]))], style["lip_colour"], cv2.LINE_AA)
    # A skin-coloured notch over the centre gives the upper lip its Cupid's bow.
    cv2.circle(img, (int(cx), int(my - 0.3 * open_h - lip_t)), max(1, int(lip_t * 0.35)),
               style["skin"], -1, cv2.LINE_AA)
    if open_h > 0.006 * S:
        teeth_h = min(0.026 * S, 0.45 * open_h + 0.5 * max(smile, 0))

        def draw(canvas, origin):
            canvas[:] = (75, 22, 28)
            teeth = np.concatenate([inner_up, inner_up[::-1] + [0, teeth_h]]) - origin
            cv2.fillPoly(canvas, [_pts(teeth)], (242, 240, 232))

        _paint_inside(img, np.concatenate([inner_up, inner_lo]), draw)
    else:
        seam = _bezier(left, (cx, my), right)
        cv2.polylines(img, [_pts(seam)], False, _shade(style["lip_colour"], 0.45), max(2, S // 150),
                      cv2.LINE_AA)


def _draw_hair_cap(img, cx, cy, fw, fh, colour, hairline: float, volume: float = 1.05) -> None:
    """Hair over the skull: outer edge an ellipse, inner edge a boxy superellipse hairline whose
    top sits ``hairline``·fh above ``cy`` and whose sides drop to sideburns near the ears."""
    t = np.linspace(np.pi, 2 * np.pi, 48)
    top = cy - 0.05 * fh
    outer = np.stack([cx + 1.03 * fw * np.cos(t), top + volume * fh * np.sin(t)], axis=1)
    c, s = np.cos(t[::-1]), np.sin(t[::-1])
    # |.|^0.5 turns the ellipse into a squarer superellipse: a flat forehead line, steep temples.
    inner_y = top - (hairline - 0.05) * fh * np.abs(s) ** 0.5
    # Keep the hairline inside the (elliptic) skull so no background shows between hair and skin.
    skull_x = fw * np.sqrt(np.clip(1.0 - ((inner_y - cy) / fh) ** 2, 0.0, 1.0))
    inner_x = np.sign(c) * np.minimum(0.99 * fw * np.abs(c) ** 0.5, skull_x)
    inner = np.stack([cx + inner_x, inner_y], axis=1)
    cv2.fillPoly(img, [_pts(np.concatenate([outer, inner]))], colour, cv2.LINE_AA)


def _style_key(style: dict) -> tuple:
    """Hashable form of a style dict, so rendered stills can be cached per speaker."""
    return tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v)
                        for k, v in style.items()))


@functools.lru_cache(maxsize=512)
def _render_still(emotion: str, style_key: tuple, mouth_open: float, size: int) -> np.ndarray:
    """Draw the face, centred and without jitter, at 4x size and downsample it to ``size``."""
    st = dict(style_key)
    expr = _EXPRESSIONS[emotion]
    S = size * _SS
    scale = S / 96.0  # line widths were tuned on a 96-px frame (384 px supersampled)

    img = np.empty((S, S, 3), np.uint8)
    img[:] = st["background"]
    skin, hair = st["skin"], st["hair_colour"]
    brow_colour = st["brow_colour"] or _shade(hair, 0.75)
    line_colour = _shade(skin, 0.66)
    lw = max(1, int(0.9 * scale))

    cx, cy = 0.5 * S, 0.5 * S
    fw = 0.27 * S * st["face_width"]  # head half-width
    fh = 0.36 * S * st["face_height"]  # head half-height
    jaw_drop = mouth_open * 0.02 * S  # the chin drops a little while speaking

    # Behind the head: shoulders, neck, long hair, ears.
    _ellipse(img, (cx, S * 1.1), (fw * 2.0, S * 0.26), st["shirt_colour"], 180, 360)
    cv2.rectangle(img, (int(cx - fw * 0.42), int(cy + fh * 0.4)), (int(cx + fw * 0.42), S),
                  _shade(skin, 0.78), -1)
    if st["hair_style"] == "long":
        _ellipse(img, (cx, cy - 0.1 * fh), (fw * 1.2, fh), hair, 180, 360)
        cv2.rectangle(img, (int(cx - fw * 1.2), int(cy - 0.1 * fh)),
                      (int(cx + fw * 1.2), int(cy + fh * 0.75)), hair, -1)
    for side in (-1, 1):
        ear = (cx + side * fw * 0.96, cy + 0.02 * fh)
        _ellipse(img, ear, (fw * 0.13, fh * 0.19), _shade(skin, 0.88))

    # Head: nested, progressively brighter outlines approximate frontal lighting (darker rim).
    head_cy = cy + 0.5 * jaw_drop
    head_hh = fh + 0.5 * jaw_drop
    for k, shrink in enumerate(np.linspace(1.0, 0.35, 7)):
        outline = _egg(cx, head_cy - (1 - shrink) * 0.15 * fh, fw * shrink, head_hh * shrink)
        cv2.fillPoly(img, [_pts(outline)], _shade(skin, 0.84 + 0.035 * k),
                     cv2.LINE_AA if k == 0 else cv2.LINE_8)

    hs = st["hair_style"]
    if hs in ("short", "long"):
        _draw_hair_cap(img, cx, cy, fw, fh, hair, hairline=0.62)
    elif hs == "band":
        _draw_hair_cap(img, cx, cy, fw, fh, hair, hairline=0.68)
        band = _bezier((cx - 1.02 * fw, cy - 0.62 * fh), (cx, cy - 0.84 * fh),
                       (cx + 1.02 * fw, cy - 0.62 * fh))
        cv2.polylines(img, [_pts(band)], False, st["band_colour"], int(0.045 * S), cv2.LINE_AA)
    elif hs == "crop":  # receding, close-cropped
        _draw_hair_cap(img, cx, cy, fw * 0.98, fh, hair, hairline=0.8, volume=1.0)

    eye_y = cy - 0.08 * fh
    eye_dx = 0.42 * fw * st["eye_spacing"]
    eye_hw = 0.23 * fw
    eye_hh = 0.10 * fh
    nose_y = cy + 0.27 * fh
    mouth_y = cy + 0.52 * fh + 0.4 * jaw_drop
    mouth_hw = 0.34 * fw * expr["mouth_w"]

    if expr["cheek"] > 0:
        # Raised cheek apples (AU6): faint blush under the eyes.
        blush = tuple(int(0.75 * s + 0.25 * b) for s, b in zip(skin, (235, 120, 120)))
        for side in (-1, 1):
            _ellipse(img, (cx + side * eye_dx * 1.1, cy + 0.2 * fh), (fw * 0.17, fh * 0.08), blush)

    for side in (-1, 1):
        _draw_eye(img, (cx + side * eye_dx, eye_y), eye_hw, eye_hh, side, expr, st, scale)

    # Eyebrows: the inner/outer end heights carry most of the anger and sadness signal.
    brow_y = eye_y - 0.27 * fh
    thick = int((0.03 if expr["brow_in"] > 0.02 else 0.024) * S)
    for side in (-1, 1):
        inner = (cx + side * (eye_dx - eye_hw * 1.05), brow_y + 0.01 * S + expr["brow_in"] * S)
        outer = (cx + side * (eye_dx + eye_hw * 1.3), brow_y + 0.02 * S + expr["brow_out"] * S)
        mid = ((inner[0] + outer[0]) / 2,
               (inner[1] + outer[1]) / 2 - 0.012 * S - expr["brow_arch"] * S)
        cv2.polylines(img, [_pts(_bezier(inner, mid, outer))], False, brow_colour, thick, cv2.LINE_AA)

    if emotion == "angry":
        # Vertical frown lines between the lowered brows.
        for side in (-1, 1):
            x = cx + side * 0.045 * fw
            frown = np.array([(x, brow_y + 0.03 * S), (x - side * 0.008 * S, brow_y + 0.07 * S)])
            cv2.polylines(img, [_pts(frown)], False, line_colour, lw, cv2.LINE_AA)
    elif emotion == "sad":
        # Short forehead creases above the raised inner brows.
        for k in (0, 1):
            y = brow_y - (0.025 + 0.02 * k) * S
            crease = _bezier((cx - 0.07 * S, y + 0.008 * S), (cx, y), (cx + 0.07 * S, y + 0.008 * S))
            cv2.polylines(img, [_pts(crease)], False, line_colour, lw, cv2.LINE_AA)

    # Nose: faint side shadows, tip curve, nostrils.
    for side in (-1, 1):
        side_line = _bezier((cx + side * 0.07 * fw, eye_y + 0.12 * fh),
                            (cx + side * 0.1 * fw, nose_y - 0.12 * fh),
                            (cx + side * 0.15 * fw, nose_y - 0.02 * fh))
        cv2.polylines(img, [_pts(side_line)], False, _shade(skin, 0.8), lw, cv2.LINE_AA)
        _ellipse(img, (cx + side * 0.075 * fw, nose_y + 0.015 * fh), (0.05 * fw, 0.028 * fh),
                 _shade(skin, 0.5))
    _ellipse(img, (cx, nose_y - 0.01 * fh), (0.12 * fw, 0.06 * fh), _shade(skin, 0.68), 20, 160, lw)

    if expr["cheek"] > 0:
        # Smile lines from the nose wings toward (not around) the lifted mouth corners.
        for side in (-1, 1):
            fold = _bezier((cx + side * 0.2 * fw, nose_y - 0.01 * fh),
                           (cx + side * (mouth_hw + 0.06 * fw), mouth_y - 0.16 * fh),
                           (cx + side * (mouth_hw + 0.1 * fw), mouth_y - 0.02 * fh))
            cv2.polylines(img, [_pts(fold)], False, _shade(skin, 0.74), lw, cv2.LINE_AA)
    _draw_mouth(img, cx, mouth_y, mouth_hw, expr, mouth_open, st, S)

    out = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    out.flags.writeable = False  # shared through the cache
    return out


def render_face(emotion: str, style: dict | None, mouth_open: float, size: int,
                rng: np.random.Generator) -> np.ndarray:
    """Render one RGB frame of a frontal cartoon face showing ``emotion``.

    ``emotion`` is one of ``EMOTIONS``; ``style`` overrides keys of ``DEFAULT_STYLE`` to give each
    speaker a distinct look; ``mouth_open`` in [0, 1] opens the jaw (lip-sync from audio
    loudness, quantised to 1/20 steps); ``rng`` supplies the small per-frame head-position
    (±1.5 px, sub-pixel) and brightness (±3 %) jitter, so the same inputs with the same generator
    state give the same frame. Returns a new ``uint8`` array of shape ``[size, size, 3]``.
    """
    if emotion not in _EXPRESSIONS:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {EMOTIONS}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    st = {**DEFAULT_STYLE, **(style or {})}
    # Quantising the opening lets a whole utterance reuse a handful of cached drawings; the step
    # is below half a pixel of jaw movement at 96 px.
    level = round(float(np.clip(mouth_open, 0.0, 1.0)) * _MOUTH_LEVELS) / _MOUTH_LEVELS
    still = _render_still(emotion, _style_key(st), level, int(size))
    dx, dy = rng.uniform(-1.5, 1.5, size=2)
    brightness = 1.0 + rng.uniform(-0.03, 0.03)
    # Shifting the finished still equals drawing the head elsewhere: the background is plain and
    # the shoulders/neck run off the bottom edge, which BORDER_REPLICATE continues.
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    out = cv2.warpAffine(still, shift, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    lut = np.clip(np.arange(256) * brightness, 0, 255).astype(np.uint8)
    return cv2.LUT(out, lut)
