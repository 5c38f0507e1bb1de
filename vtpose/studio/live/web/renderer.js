// Drawing the scene: avatars posed by the server's rigs, from the same definitions as vtpose/studio/avatar/draw.py.
//
// This is a line-for-line port of vtpose/studio/avatar/draw.py (shapes, sizes in body units, draw order, fallback
// colours), so the page's avatar matches `vtpose avatar`'s; tests/test_studio_browser.py compares the two.
// Rigs (every joint, the body unit, head roll and turn) come from the server, computed by vtpose/studio/avatar/rig.py.
// Expressions (expressions.js: blink, mouth) are the page's own: with both 0 the face is draw.py's exactly; the
// Python renderer has no blink or speech.

import { EYES_SHUT, MOUTH_OPEN, NEUTRAL } from "./expressions.js";

const CURVE_POINTS = 64;
const WHITE = "#ffffff";
const TAU = 2 * Math.PI;

const px = (value) => Math.max(1, Math.round(value)); // OpenCV strokes whole pixels

function linspace(start, end, n, endpoint) {
  const step = (end - start) / (endpoint ? n - 1 : n);
  return Array.from({ length: n }, (_, i) => start + step * i);
}

export function ellipsePolygon([cx, cy], rx, ry, angle = 0, start = 0, end = TAU) {
  const span = Math.abs(end - start);
  const n = Math.max(8, Math.floor((CURVE_POINTS * span) / TAU));
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  return linspace(start, end, n, span < TAU - 1e-9).map((t) => {
    const x = rx * Math.cos(t);
    const y = ry * Math.sin(t);
    return [x * c - y * s + cx, x * s + y * c + cy];
  });
}

function capsulePolygon(p, q, r1, r2) {
  const angle = Math.atan2(q[1] - p[1], q[0] - p[0]);
  const half = Math.PI / 2;
  return [...ellipsePolygon(q, r2, r2, 0, angle - half, angle + half), ...ellipsePolygon(p, r1, r1, 0, angle + half, angle + 3 * half)];
}

function path(ctx, points, closed) {
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  if (closed) ctx.closePath();
}

function fill(ctx, polygon, color) {
  path(ctx, polygon, true);
  ctx.fillStyle = color;
  ctx.fill();
}

function stroke(ctx, polyline, color, width, closed = false) {
  path(ctx, polyline, closed);
  ctx.strokeStyle = color;
  ctx.lineWidth = px(width);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.stroke();
}

function drawOutlined(ctx, part, grow, unit) {
  const ow = part.outline_width * unit;
  if (part.fill === null) {
    if (part.outline !== null) stroke(ctx, grow(0), part.outline, Math.max(ow, 1), true);
    return;
  }
  if (part.outline !== null && ow > 0.3) fill(ctx, grow(ow), part.outline);
  fill(ctx, grow(0), part.fill);
}

function drawLimb(ctx, part, rig) {
  const [p, q] = part.joints.map((j) => rig.points[j]);
  const r1 = (part.width * rig.unit) / 2;
  const r2 = (part.width_end * rig.unit) / 2;
  if (part.fill === null) {
    if (part.outline !== null) stroke(ctx, [p, q], part.outline, Math.max(2 * r1, 1));
    return;
  }
  drawOutlined(ctx, part, (g) => capsulePolygon(p, q, r1 + g, r2 + g), rig.unit);
}

function drawCircle(ctx, part, rig) {
  const c = rig.points[part.joints[0]];
  const r = part.width * rig.unit;
  drawOutlined(ctx, part, (g) => ellipsePolygon(c, r + g, r + g), rig.unit);
}

function drawPolygon(ctx, part, rig) {
  const pts = part.joints.map((j) => rig.points[j]);
  const rounding = part.width * rig.unit;
  const ow = part.outline_width * rig.unit;
  const blob = (color, grow) => {
    fill(ctx, pts, color);
    if (rounding + grow >= 0.5) stroke(ctx, pts, color, 2 * (rounding + grow), true);
  };
  if (part.fill === null) {
    if (part.outline !== null) stroke(ctx, pts, part.outline, Math.max(ow, 1), true);
    return;
  }
  if (part.outline !== null && ow > 0.3) blob(part.outline, ow);
  blob(part.fill, 0);
}

// Head-local coordinates (head radii, x right, y down, before roll) to canvas pixels.
class HeadFrame {
  constructor(center, radius, roll, turn) {
    this.center = center;
    this.r = radius;
    this.turn = turn;
    this.c = Math.cos(roll);
    this.s = Math.sin(roll);
  }

  map(points) {
    const { c, s, r } = this;
    return points.map(([x, y]) => [x * r * c - y * r * s + this.center[0], x * r * s + y * r * c + this.center[1]]);
  }

  point(x, y) {
    return this.map([[x, y]])[0];
  }

  ellipse(cx, cy, rx, ry, start = 0, end = TAU) {
    return this.map(ellipsePolygon([cx, cy], rx, ry, 0, start, end));
  }
}

function headOutline(frame, style, grow) {
  const g = grow / frame.r;
  if (style === "box") {
    const power = 0.35;
    const pts = linspace(0, TAU, CURVE_POINTS, false).map((t) => {
      const c = Math.cos(t);
      const s = Math.sin(t);
      return [Math.sign(c) * Math.abs(c) ** power * (0.95 + g), Math.sign(s) * Math.abs(s) ** power * (0.88 + g)];
    });
    return frame.map(pts);
  }
  return frame.ellipse(0, 0, 1 + g, 0.97 + g);
}

function drawEars(ctx, part, frame, ow) {
  const color = part.ear_color || part.fill || WHITE;
  const outline = part.outline;
  const blush = part.face.blush_color;
  const k = ow / frame.r;
  for (const sx of [-1, 1]) {
    if (part.ears === "cat") {
      const outer = frame.map([[0.38 * sx, -0.95], [0.98 * sx, -1.32], [0.92 * sx, -0.42]]);
      const inner = frame.map([[0.5 * sx, -0.88], [0.9 * sx, -1.12], [0.86 * sx, -0.62]]);
      if (outline !== null) {
        fill(ctx, outer, outline);
        stroke(ctx, outer, outline, 2 * ow, true);
      }
      fill(ctx, outer, color);
      fill(ctx, inner, blush || "#ffa0b4");
    } else if (part.ears === "bear") {
      if (outline !== null) fill(ctx, frame.ellipse(0.72 * sx, -0.72, 0.34 + k, 0.34 + k), outline);
      fill(ctx, frame.ellipse(0.72 * sx, -0.72, 0.34, 0.34), color);
      fill(ctx, frame.ellipse(0.72 * sx, -0.72, 0.18, 0.18), blush || "#dcaa96");
    } else if (part.ears === "bunny") {
      if (outline !== null) fill(ctx, frame.ellipse(0.4 * sx, -1.35, 0.22 + k, 0.62 + k), outline);
      fill(ctx, frame.ellipse(0.4 * sx, -1.35, 0.22, 0.62), color);
      fill(ctx, frame.ellipse(0.4 * sx, -1.3, 0.1, 0.45), blush || "#ffaabe");
    }
  }
  if (part.ears === "antenna") {
    const tip = frame.point(0, -1.45);
    const base = frame.point(0, -0.8);
    stroke(ctx, [base, tip], outline || color, Math.max(2.5 * ow, 2));
    const r = 0.14 * frame.r;
    if (outline !== null) fill(ctx, ellipsePolygon(tip, r + ow, r + ow), outline);
    fill(ctx, ellipsePolygon(tip, r, r), part.face.detail_color || color);
    for (const sx of [-1, 1]) {
      fill(ctx, frame.ellipse(sx, 0, 0.14 + k, 0.3 + k), outline || color);
      fill(ctx, frame.ellipse(sx, 0, 0.12, 0.26), color);
    }
  }
}

function drawHairBack(ctx, part, frame, ow) {
  if (part.hair_color === null) return;
  const shape = frame.map([
    ...ellipsePolygon([0, 0], 1.12, 1.08, 0, Math.PI, TAU),
    [1.16, 0.5], [1.2, 1.5], [0.9, 1.75], [-0.9, 1.75], [-1.2, 1.5], [-1.16, 0.5],
  ]);
  if (part.outline !== null) stroke(ctx, shape, part.outline, 2 * ow, true);
  fill(ctx, shape, part.hair_color);
}

function drawHairFront(ctx, part, frame, ow) {
  if (part.hair_color === null) return;
  const cap = ellipsePolygon([0, 0], 1.05, 1.02, 0, Math.PI * 1.06, Math.PI * 1.94);
  const shift = 0.25 * frame.turn;
  const fringe = [
    [0.98, -0.1], [0.7, -0.35], [0.45 + shift, -0.2], [0.2 + shift, -0.42], [-0.1 + shift, -0.25], [-0.45, -0.4], [-0.98, -0.1],
  ];
  const shape = frame.map([...cap, ...fringe]);
  if (part.outline !== null) stroke(ctx, shape, part.outline, ow, true);
  fill(ctx, shape, part.hair_color);
}

// An eye of half-height `ry` (head radii) at (cx, cy), `blink` shut: its lids meet at the eye's lower third, and
// from EYES_SHUT on it is a closed-eye arc (a thin line, so a shut eye still shows).
function drawEye(ctx, frame, [cx, cy], rx, ry, blink, color, line) {
  if (blink >= EYES_SHUT) {
    stroke(ctx, frame.ellipse(cx, cy, rx, ry * 0.35, 0.1 * Math.PI, 0.9 * Math.PI), color, line);
    return;
  }
  const open = 1 - blink;
  fill(ctx, frame.ellipse(cx, cy + ry * blink * 0.35, rx, ry * open), color);
}

// An open mouth (`mouth` 0..1) of width `rx` (head radii) under (cx, top): a dark oval growing downwards.
function drawOpenMouth(ctx, frame, cx, top, rx, mouth, color) {
  const ry = 0.03 + 0.11 * mouth;
  fill(ctx, frame.ellipse(cx, top + ry, rx * (0.6 + 0.4 * mouth), ry), color);
}

function drawFace(ctx, face, frame, turn, ow, { blink, mouth }) {
  const dx = 0.3 * turn;
  const es = face.eye_size;
  const eyeY = 0.12;
  const line = Math.max(ow * 0.8, 1.5);
  const talking = mouth >= MOUTH_OPEN;
  if (face.style === "robot") {
    fill(ctx, frame.ellipse(dx * 0.6, 0.05, 0.72, 0.36), face.detail_color || "#1e283c");
    for (const sx of [-1, 1]) {
      const eye = [dx + 0.32 * sx, eyeY - 0.05];
      if (blink > 0) drawEye(ctx, frame, eye, es * 1.3, es * 0.8, blink, face.eye_color || WHITE, line);
      else fill(ctx, frame.ellipse(eye[0], eye[1], es * 1.3, es * 0.8), face.eye_color || WHITE);
    }
    if (face.mouth_color !== null) {
      // A speaker grille: its bars stretch with the voice, the middle one most.
      for (const i of [-1, 0, 1]) {
        const x = dx + 0.16 * i;
        const stretch = talking ? mouth * (i === 0 ? 0.12 : 0.07) : 0;
        stroke(ctx, frame.map([[x, 0.55 - stretch], [x, 0.72 + stretch]]), face.mouth_color, line);
      }
    }
    return;
  }
  if (face.style === "sketch") {
    for (const sx of [-1, 1]) {
      const eye = [dx + 0.35 * sx, eyeY - 0.05];
      if (blink > 0) drawEye(ctx, frame, eye, es * 0.6, es * 0.6, blink, face.eye_color || "#000000", line);
      else fill(ctx, frame.ellipse(eye[0], eye[1], es * 0.6, es * 0.6), face.eye_color || "#000000");
    }
    if (face.mouth_color !== null && talking) {
      const ry = 0.04 + 0.12 * mouth;
      stroke(ctx, frame.ellipse(dx, 0.4 + ry, 0.18, ry), face.mouth_color, line, true);
    } else if (face.mouth_color !== null) {
      stroke(ctx, frame.ellipse(dx, 0.3, 0.3, 0.22, 0.2 * Math.PI, 0.8 * Math.PI), face.mouth_color, line);
    }
    return;
  }
  if (face.blush_color !== null) {
    for (const sx of [-1, 1]) fill(ctx, frame.ellipse(dx + 0.56 * sx, 0.4, 0.16, 0.09), face.blush_color);
  }
  for (const sx of [-1, 1]) {
    const cx = dx + 0.36 * sx;
    if (blink > 0) {
      drawEye(ctx, frame, [cx, eyeY], es, es * 1.3, blink, face.eye_color || "#000000", line);
      if (blink >= 0.5) continue; // the highlights go behind the lids
    } else {
      fill(ctx, frame.ellipse(cx, eyeY, es, es * 1.3), face.eye_color || "#000000");
    }
    fill(ctx, frame.ellipse(cx + es * 0.35, eyeY - es * 0.45, es * 0.38, es * 0.38), WHITE);
    fill(ctx, frame.ellipse(cx - es * 0.3, eyeY + es * 0.55, es * 0.18, es * 0.18), WHITE);
  }
  if (face.mouth_color === null) return;
  if (face.style === "cat") {
    if (talking) drawOpenMouth(ctx, frame, dx, 0.44, 0.1, mouth, face.mouth_color);
    fill(ctx, frame.map([[dx - 0.07, 0.34], [dx + 0.07, 0.34], [dx, 0.42]]), face.detail_color || "#e66e78");
    for (const sx of [-1, 1]) {
      if (!talking) stroke(ctx, frame.ellipse(dx + 0.085 * sx, 0.44, 0.085, 0.08, 0.05 * Math.PI, 0.95 * Math.PI), face.mouth_color, line);
      [-0.06, 0.06].forEach((dy, k) => {
        const start = [dx + 0.5 * sx, 0.38 + dy];
        const end = [dx + (0.95 + 0.05 * k) * sx, 0.32 + dy * 2.2];
        stroke(ctx, frame.map([start, end]), face.detail_color || face.mouth_color, line * 0.8);
      });
    }
  } else if (talking) {
    drawOpenMouth(ctx, frame, dx, 0.36, 0.15, mouth, face.mouth_color);
  } else {
    stroke(ctx, frame.ellipse(dx, 0.36, 0.16, 0.12, 0.15 * Math.PI, 0.85 * Math.PI), face.mouth_color, line);
  }
}

function drawHead(ctx, part, rig, expression) {
  const r = part.width * rig.unit;
  const frame = new HeadFrame(rig.points[part.joints[0]], r, rig.head_roll, rig.face_turn);
  const ow = part.outline_width * rig.unit;
  drawEars(ctx, part, frame, ow);
  drawOutlined(ctx, part, (g) => headOutline(frame, part.head_style, g), rig.unit);
  drawHairFront(ctx, part, frame, ow);
  drawFace(ctx, part.face, frame, rig.face_turn, ow, expression);
}

const DRAWERS = { limb: drawLimb, circle: drawCircle, polygon: drawPolygon, head: drawHead };

/** Draw one avatar (its JSON definition) posed by a rig in canvas pixels, as draw.py's draw_avatar does, with the
 * expression's blink and mouth (expressions.js; NEUTRAL: draw.py's face). */
export function drawAvatar(ctx, rig, avatar, expression = NEUTRAL) {
  const head = avatar.parts.find((p) => p.shape === "head");
  if (head && head.hair_color !== null) {
    const frame = new HeadFrame(rig.points[head.joints[0]], head.width * rig.unit, rig.head_roll, rig.face_turn);
    drawHairBack(ctx, head, frame, head.outline_width * rig.unit);
  }
  for (const part of avatar.parts) {
    if (part.is_leg && !rig.full_body) continue;
    DRAWERS[part.shape](ctx, part, rig, expression);
  }
}

/** A rig mapped by p -> p * scale (Rig.transformed with no offset). */
export function scaleRig(rig, scale) {
  const points = {};
  for (const [name, [x, y]] of Object.entries(rig.points)) points[name] = [x * scale, y * scale];
  return { ...rig, points, unit: rig.unit * scale };
}

function drawSkeleton(ctx, keypoints, skeleton, scale) {
  const ok = (i) => keypoints[i][2] >= 0.3;
  ctx.lineWidth = Math.max(2, 3 * scale);
  ctx.lineCap = "round";
  ctx.strokeStyle = "#39ff88";
  for (const [a, b] of skeleton) {
    if (!ok(a) || !ok(b)) continue;
    ctx.beginPath();
    ctx.moveTo(keypoints[a][0] * scale, keypoints[a][1] * scale);
    ctx.lineTo(keypoints[b][0] * scale, keypoints[b][1] * scale);
    ctx.stroke();
  }
  ctx.fillStyle = "#ff3d7f";
  keypoints.forEach(([x, y], i) => {
    if (!ok(i)) return;
    ctx.beginPath();
    ctx.arc(x * scale, y * scale, Math.max(3, 4 * scale), 0, TAU);
    ctx.fill();
  });
}

// Per scene canvas holding only its background (3D, no skeleton): what that background is, [kind, colour, image,
// width, height]; a canvas also holding avatars or a skeleton has no entry.
const BACKGROUND_DRAWN = new WeakMap();

/**
 * The whole scene: background, then every person's avatar (furthest back first), then skeletons if asked.
 *
 * @param {CanvasRenderingContext2D} ctx the scene canvas
 * @param {object} poses the server's `poses` message (persons in the sent frame's pixels, `size` [w, h])
 * @param {object} look {settings, avatars: name -> definition, background: CanvasImageSource | null, skeleton: pairs,
 *   scene3d: the 3D scene (renderer3d.js) drawn instead of the avatars when settings.mode is "3d", expressions}
 * @param {{blink: number, mouth: number}} [expression] every avatar's blink and mouth (default NEUTRAL: draw.py's face)
 * @returns {Promise<number>} when the scene is on screen (performance.now()): in 3D once the avatars' layer is
 *   rendered, else now. (In 3D the skeleton, drawn on the scene canvas, is under the avatars' layer.)
 */
export function drawScene(ctx, poses, look, expression = NEUTRAL) {
  const { width, height } = ctx.canvas;
  const { settings } = look;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  const bg = settings.background;
  const in3d = settings.mode === "3d" && look.scene3d;
  // In 3D without the skeleton the scene canvas holds the background only, the avatars being on their own layer:
  // it is drawn again only when the background changes (software compositing pays for each canvas that changes).
  const backgroundOnly = in3d && !(poses && settings.skeleton);
  const background = [bg.kind, bg.color, look.background, width, height];
  const kept = BACKGROUND_DRAWN.get(ctx.canvas);
  if (!(backgroundOnly && kept && kept.every((value, i) => value === background[i]))) {
    ctx.clearRect(0, 0, width, height);
    if (bg.kind === "color") {
      ctx.fillStyle = bg.color;
      ctx.fillRect(0, 0, width, height);
    } else if (bg.kind !== "transparent" && look.background) {
      ctx.drawImage(look.background, 0, 0, width, height);
    }
  }
  if (backgroundOnly) BACKGROUND_DRAWN.set(ctx.canvas, background);
  else BACKGROUND_DRAWN.delete(ctx.canvas);
  if (look.scene3d && (!in3d || !poses)) look.scene3d.hide();
  if (!poses) return Promise.resolve(performance.now());
  const scale = width / poses.size[0];
  if (settings.mirror) ctx.setTransform(-1, 0, 0, 1, width, 0);
  // OpenCV centres pixel (x, y) at x, y; a canvas at x + 0.5, y + 0.5 (measured: the closer match).
  ctx.translate(0.5, 0.5);
  const drawn = poses.persons
    .filter((p) => p.rig && look.avatars[p.avatar])
    .map((p) => ({ rig: scaleRig(p.rig, scale), avatar: look.avatars[p.avatar] }))
    .sort((a, b) => a.rig.points.pelvis[1] - b.rig.points.pelvis[1]);
  let rendered = null;
  if (in3d) {
    const now = look.expressions ? look.expressions.state(performance.now()) : null;
    rendered = look.scene3d.draw(ctx, poses, settings.mirror, now ? { ...now, ...expression } : expression);
  } else {
    for (const { rig, avatar } of drawn) drawAvatar(ctx, rig, avatar, expression);
  }
  if (settings.skeleton) for (const p of poses.persons) drawSkeleton(ctx, p.keypoints, look.skeleton, scale);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  return rendered ?? Promise.resolve(performance.now());
}

/**
 * For tests and snapshots: the scene as shown (the scene canvas and, in 3D, the avatars' layer over it) as a PNG
 * data URL.
 * @param {HTMLCanvasElement} canvas the scene canvas
 * @param {object} look as for drawScene
 */
export function sceneImage(canvas, look) {
  const out = document.createElement("canvas");
  out.width = canvas.width;
  out.height = canvas.height;
  const ctx = out.getContext("2d");
  ctx.drawImage(canvas, 0, 0);
  if (look.scene3d) look.scene3d.composite(ctx);
  return out.toDataURL("image/png");
}

/**
 * Size the scene canvas to `width` pixels wide at the sent frame's aspect ratio (only when that changes, since
 * resizing clears it).
 *
 * @param {HTMLCanvasElement} canvas the scene canvas
 * @param {number} width the wanted width in pixels
 * @param {number[]} size the sent frame's [w, h]
 */
export function fitScene(canvas, width, size) {
  const height = Math.round((width * size[1]) / size[0]);
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
    BACKGROUND_DRAWN.delete(canvas); // resizing cleared it
  }
}
