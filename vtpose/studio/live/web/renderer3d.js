// The 3D scene: VRM avatars posed by the server's solved bones (each person's `body3d`), drawn with three.js and
// three-vrm on a transparent WebGL canvas laid over the scene canvas, which holds the background (`attach`). Laid
// over, not copied in: copying a WebGL canvas into a 2D one makes the page wait for the render (software WebGL
// renders on the CPU, 15-28 ms for four kitties), while a layer is composited when its render is done and the page
// meanwhile grabs and encodes the next camera frame. `draw` says when the render is done, which is when the frame is
// counted as drawn; `composite` copies the layer into a 2D canvas for tests and snapshots.
//
// The camera and axes are the issue-17 contract's: an orthographic camera looking along -Z at the frame the server
// ran the model on, scene x = frame x and scene y = -(frame y) in pixels, so a point projects to the frame pixel it
// came from; the page scales that frame to its canvas exactly as the 2D renderer does. Bone rotations are local
// rotations of three-vrm's normalized humanoid bones in VRM 1.0 conventions (T-pose rest, facing +Z, left hand +X).

import * as THREE from "./vendor/three/three.module.js";
import { GLTFLoader } from "./vendor/three/addons/loaders/GLTFLoader.js";
import { VRMLoaderPlugin, VRMUtils } from "./vendor/three-vrm/three-vrm.module.min.js";
import { applyVertexLighting, sceneLights } from "./shading3d.js";

// "glTF" read as a little-endian uint32: the first four bytes of every glTF binary (.glb, .vrm) file.
const GLB_MAGIC = 0x46546c67;
// Persons drawn at most (each one its own instance of the chosen VRM).
const MAX_INSTANCES = 8;
// Persons are set this far apart in depth (scene units) per pixel their hips are apart in height, so that one
// standing lower in the frame is drawn in front (avatars are about a shoulder width deep).
const DEPTH_PER_PIXEL = 4;
// The camera sits this far in front of the frame (pixels): beyond the nearest avatar (DEPTH_PER_PIXEL times the
// frame's height at most, plus its own depth).
const CAMERA_Z = 20000;
// Breathing: the chest rises by this much (radians about x) at the top of a breath, when the body is still.
const BREATH_ANGLE = 0.035;
// Bones whose rotation changing by less than this (radians, per frame) count as still, for breathing.
const STILL_ANGLE = 0.02;
// Dynamic resolution: the WebGL canvas is drawn at one of these fractions of the scene canvas's width and height,
// then scaled into the scene. A GPU draws the avatars in a millisecond at full size; software WebGL (SwiftShader:
// a browser source on a machine without a GPU, headless Chromium) pays for every pixel and triangle on the CPU the
// model needs too, so a scene over budget is drawn smaller rather than slower (four kitties: 11 ms at 1, 7 at 0.5).
const RENDER_SCALES = [1, 0.75, 0.5];
// The 3D drawing's budget per frame (ms: from the render's start until it is done, told by a WebGL fence).
const DRAW_BUDGET_MS = 8;
// How often a render's fence is asked whether it is done (ms; timers below 4 ms are clamped after a few anyway).
const FENCE_POLL_MS = 1;
// A larger scale is taken back when the cost, grown by its pixels, would stay under this share of the budget.
const SCALE_UP_SHARE = 0.6;
// Frames drawn at a scale before it may change again, and each frame's weight in the running cost.
const SCALE_HOLD_FRAMES = 15;
const COST_WEIGHT = 0.2;
// The humanoid joints projected for tests and benchmarks (vtpose/testing/vrm_fidelity.py pairs them with
// keypoints); "hips" is the midpoint of the upper-leg joints, where body3d.hips puts it, and "face" a point
// FACE_ABOVE_HEAD shoulder widths up the head bone from its joint (the skull's base), where a face's centre is on
// an adult (vtpose/studio/avatar3d/skeleton.py: FACE_RISE - HEAD_RISE).
const FACE_ABOVE_HEAD = 0.4;
const PROJECTED = [
  "hips", "spine", "chest", "neck", "head", "face",
  "leftUpperArm", "leftLowerArm", "leftHand", "rightUpperArm", "rightLowerArm", "rightHand",
  "leftUpperLeg", "leftLowerLeg", "leftFoot", "rightUpperLeg", "rightLowerLeg", "rightFoot",
];

/**
 * Why `buffer` cannot be a VRM file, checked before it is sent or parsed (size, glTF binary header), or null.
 * @param {ArrayBuffer} buffer the file's bytes
 * @param {string} name the file's name, for the message
 * @param {number} maxBytes the server's limit (config.limits.max_vrm_bytes)
 */
export function vrmFileProblem(buffer, name, maxBytes) {
  const mb = (n) => `${(n / 1048576).toFixed(1)} MB`;
  if (buffer.byteLength > maxBytes) {
    return `${name} is ${mb(buffer.byteLength)}, over the ${mb(maxBytes)} limit for a VRM; export it with smaller textures.`;
  }
  const view = new DataView(buffer);
  if (buffer.byteLength < 20 || view.getUint32(0, true) !== GLB_MAGIC) {
    return `${name} is not a VRM file (VRM files are glTF binary, starting with "glTF"); export your avatar as .vrm.`;
  }
  if (view.getUint32(4, true) !== 2) return `${name} is glTF version ${view.getUint32(4, true)}; VRM needs glTF 2.`;
  return null;
}

// GLTFLoader loads embedded images with fetch() on a blob: URL, which the page's CSP (connect-src 'self') blocks;
// an <img> on a blob: URL is allowed (img-src blob:), so images go through TextureLoader.
function imagesThroughImg(parser) {
  parser.textureLoader = new THREE.TextureLoader(parser.options.manager);
  return { name: "vtpose_images_through_img" };
}

/**
 * Parse a VRM file's bytes into a three-vrm VRM facing +Z (0.x files turned by `VRMUtils.rotateVRM0`).
 * @param {ArrayBuffer} buffer the .vrm file
 * @returns {Promise<import("./vendor/three-vrm/three-vrm.module.min.js").VRM>}
 */
export async function parseVrm(buffer) {
  const loader = new GLTFLoader();
  loader.register(imagesThroughImg);
  loader.register((parser) => new VRMLoaderPlugin(parser));
  const gltf = await loader.parseAsync(buffer, "");
  const vrm = gltf.userData.vrm;
  if (!vrm) throw new Error("it is glTF without a VRM extension (VRMC_vrm or VRM); export it as a VRM");
  if (!vrm.humanoid || !vrm.humanoid.getNormalizedBoneNode("hips")) throw new Error("it has no humanoid bones");
  VRMUtils.removeUnnecessaryVertices(gltf.scene);
  VRMUtils.combineSkeletons(gltf.scene);
  VRMUtils.rotateVRM0(vrm);
  applyVertexLighting(vrm.scene); // the prepared avatars' materials ask for it
  // Posed limbs leave the rest pose's bounds; the scene is small enough to draw whole.
  vrm.scene.traverse((object) => (object.frustumCulled = false));
  return vrm;
}

function disposeVrm(vrm) {
  VRMUtils.deepDispose(vrm.scene);
}

/** Throws three-vrm's (or this page's) reason when `buffer` does not load as a VRM; nothing is kept. */
export async function checkVrmLoads(buffer) {
  disposeVrm(await parseVrm(buffer));
}

/** A VRM file's parsed instance and what the page needs of its rest pose. */
class Avatar {
  constructor(vrm) {
    this.vrm = vrm;
    // VRM 0.x's normalized bones keep the file's axes (facing -Z), turned half round by rotateVRM0: a rotation
    // given in VRM 1.0 axes is the same turn about the half-turned x and z axes.
    this.flip = vrm.meta && vrm.meta.metaVersion === "0";
    this.previous = {}; // bone -> the quaternion set last frame, for telling a still body
    const humanoid = vrm.humanoid;
    humanoid.resetNormalizedPose();
    vrm.scene.updateMatrixWorld(true);
    const at = (bone) => this.joint(bone, new THREE.Vector3());
    // The distance between the two upper-arm joints at rest, in the file's units (metres).
    this.restShoulders = at("leftUpperArm").distanceTo(at("rightUpperArm"));
  }

  node(bone) {
    return this.vrm.humanoid.getNormalizedBoneNode(bone);
  }

  /** The world position of a humanoid joint ("hips": the midpoint of the two upper-leg joints; "face": see
   * FACE_ABOVE_HEAD). */
  joint(bone, target) {
    if (bone === "face") return this.node("head").localToWorld(target.set(0, FACE_ABOVE_HEAD * this.restShoulders, 0));
    if (bone === "hips") {
      const right = new THREE.Vector3();
      this.node("leftUpperLeg").getWorldPosition(target);
      this.node("rightUpperLeg").getWorldPosition(right);
      return target.add(right).multiplyScalar(0.5);
    }
    const node = this.node(bone);
    return node ? node.getWorldPosition(target) : null;
  }

  /** Pose by `body3d` (bones, hips, shoulder_width in frame pixels) with the expressions `expr` (or null). */
  pose(body3d, expr, dt, depth) {
    const humanoid = this.vrm.humanoid;
    let moved = 0;
    for (const [bone, [x, y, z, w]] of Object.entries(body3d.bones)) {
      const node = humanoid.getNormalizedBoneNode(bone);
      if (!node) continue; // chest and neck are optional in a VRM
      if (this.flip) node.quaternion.set(-x, y, -z, w);
      else node.quaternion.set(x, y, z, w);
      const before = this.previous[bone];
      if (before) moved = Math.max(moved, before.angleTo(node.quaternion));
      else moved = Infinity;
      this.previous[bone] = node.quaternion.clone();
    }
    if (expr) this.express(expr, moved < STILL_ANGLE);
    this.vrm.update(dt);
    const scene = this.vrm.scene;
    scene.scale.setScalar(body3d.shoulder_width / this.restShoulders);
    scene.position.set(0, 0, 0);
    scene.updateMatrixWorld(true);
    const hips = this.joint("hips", new THREE.Vector3());
    scene.position.set(body3d.hips[0] - hips.x, -body3d.hips[1] - hips.y, depth - hips.z);
    scene.updateMatrixWorld(true);
  }

  express(expr, still) {
    const expressions = this.vrm.expressionManager;
    if (expressions) {
      expressions.setValue("blink", expr.blink ?? 0);
      expressions.setValue("aa", expr.mouth ?? 0);
    }
    if (still && expr.breath !== undefined) {
      const chest = this.node("chest") || this.node("spine");
      const breath = new THREE.Quaternion().setFromAxisAngle(new THREE.Vector3(1, 0, 0), -BREATH_ANGLE * expr.breath);
      chest.quaternion.multiply(breath);
    }
  }
}

/**
 * The render scale for the next frames (RENDER_SCALES), given the running cost of drawing at `scale` and the
 * frames drawn since it was taken.
 * @param {number} scale the scale now
 * @param {number} costMs the running cost of a frame's 3D drawing at that scale
 * @param {number} held frames drawn at that scale
 */
export function nextRenderScale(scale, costMs, held) {
  const i = RENDER_SCALES.indexOf(scale);
  if (i < 0) return RENDER_SCALES[0];
  if (held < SCALE_HOLD_FRAMES) return scale;
  if (costMs > DRAW_BUDGET_MS && i + 1 < RENDER_SCALES.length) return RENDER_SCALES[i + 1];
  const larger = RENDER_SCALES[i - 1];
  if (i > 0 && costMs * (larger / scale) ** 2 < SCALE_UP_SHARE * DRAW_BUDGET_MS) return larger;
  return scale;
}

/**
 * The pages' `?scale=F` (F in (0, 1]: draw the 3D scene at that fraction of its size always, e.g. 1 for full
 * resolution on a slow machine), or null for dynamic resolution.
 * @param {string} search location.search
 */
export function fixedScaleFrom(search) {
  const value = new URLSearchParams(search).get("scale");
  const scale = value === null ? NaN : Number(value);
  return scale > 0 && scale <= 1 ? scale : null;
}

export class Scene3D {
  /**
   * @param {(message: string) => void} onError shows a VRM that cannot be loaded (the previous one stays)
   * @param {() => void} onChange redraws the scene (another instance for one more person is ready)
   * @param {number | null} fixedScale draw at this fraction of the scene's size always (the pages' `?scale=`),
   *   or null: dynamic resolution (RENDER_SCALES)
   */
  constructor(onError, onChange = () => {}, fixedScale = null) {
    this.onError = onError;
    this.onChange = onChange;
    this.wanted = 1; // instances the last frame needed (one per person, at most MAX_INSTANCES)
    this.canvas = document.createElement("canvas");
    this.renderer = null; // made on first use: a page that stays in 2D never asks for WebGL
    this.noWebGL = null; // why WebGL could not be had, once asked
    this.scene = new THREE.Scene();
    this.scene.add(...sceneLights());
    this.camera = new THREE.OrthographicCamera(0, 1, 0, -1, 1, 2 * CAMERA_Z);
    this.camera.position.set(0, 0, CAMERA_Z);
    this.bytes = null; // the shown VRM's file
    this.key = null; // what it is (settings.vrm as text)
    this.avatars = []; // instances of it, one per person drawn
    this.parsing = null; // the instance being added
    this.drawn = []; // per person drawn last: {person (its poses record), avatar}
    this.size = [1, 1]; // the frame's [width, height]
    this.posesId = null; // the id of the poses message drawn last
    this.lastDraw = null;
    this.fixedScale = fixedScale;
    this.scale = fixedScale ?? RENDER_SCALES[0]; // the WebGL canvas's size over the scene canvas's
    this.cost = 0; // running cost of a frame's 3D drawing at this scale (ms)
    this.held = 0; // frames drawn at this scale
    this.mirror = false; // the last frame's mirroring
    this.canvas.className = "scene3d";
    this.canvas.hidden = true; // shown while it has avatars to draw
  }

  /** Lay the WebGL canvas over `sceneCanvas` (the background's), in the same box. */
  attach(sceneCanvas) {
    sceneCanvas.after(this.canvas);
  }

  /** Nothing drawn in 3D (2D mode, nobody in view): the layer is hidden. */
  hide() {
    this.drawn = [];
    this.canvas.hidden = true;
  }

  /** The WebGL renderer, made on first use; null (said once) where the browser has no WebGL. */
  webgl() {
    if (this.renderer || this.noWebGL) return this.renderer;
    try {
      // No MSAA: in software WebGL (SwiftShader, as in headless Chromium) it doubled the frame's cost.
      this.renderer = new THREE.WebGLRenderer({ canvas: this.canvas, alpha: true, antialias: false });
    } catch (error) {
      this.noWebGL = error.message;
      this.onError(`3D needs WebGL, which this browser does not give (${error.message}); draw in 2D instead.`);
      return null;
    }
    this.renderer.setClearColor(0x000000, 0);
    this.renderer.autoClear = false;
    return this.renderer;
  }

  /**
   * Show the VRM in `bytes` (known as `key`) for everyone from the next frame on; until it has parsed, and if it
   * fails to, the one before keeps drawing. Resolves to whether it is now shown.
   */
  async show(key, bytes, name) {
    this.pendingKey = key;
    if (key === this.key) return true;
    if (!this.webgl()) return false;
    let vrm;
    try {
      vrm = await parseVrm(bytes);
    } catch (error) {
      if (this.pendingKey === key) this.onError(`cannot load the VRM ${name}: ${error.message}; the avatar before it stays.`);
      return false;
    }
    if (this.pendingKey !== key) {
      disposeVrm(vrm); // another choice came meanwhile
      return false;
    }
    for (const avatar of this.avatars) this.remove(avatar);
    this.avatars = [new Avatar(vrm)];
    this.scene.add(vrm.scene);
    this.bytes = bytes;
    this.key = key;
    return true;
  }

  remove(avatar) {
    this.scene.remove(avatar.vrm.scene);
    disposeVrm(avatar.vrm);
  }

  /** Instances of the shown VRM up to `this.wanted`, parsed one after another in the background; the scene is
   * redrawn as each is ready. */
  addInstances() {
    if (this.parsing || !this.bytes || this.avatars.length >= this.wanted) return;
    const key = this.key;
    this.parsing = parseVrm(this.bytes)
      .then((vrm) => {
        if (key !== this.key) return disposeVrm(vrm);
        this.avatars.push(new Avatar(vrm));
        this.scene.add(vrm.scene);
        this.parsing = null;
        this.onChange();
        this.addInstances();
      })
      .catch((error) => {
        this.parsing = null;
        this.onError(`cannot add another VRM avatar: ${error.message}`);
      });
  }

  /**
   * Draw every person with `body3d` on the layer over `ctx`'s canvas (which holds the background), mirrored when
   * asked. Resolves to performance.now() when the render is done (null when nothing was drawn: the layer is hidden).
   * @param {CanvasRenderingContext2D} ctx the scene canvas
   * @param {object} poses the `poses` message
   * @param {boolean} mirror flip the drawn avatars horizontally, as the 2D scene is flipped
   * @param {{blink: number, mouth: number, breath: number} | null} expr the expressions now, or null
   * @returns {Promise<number> | null}
   */
  draw(ctx, poses, mirror, expr) {
    const { width, height } = ctx.canvas;
    const persons = poses.persons.filter((p) => p.body3d);
    if (!this.avatars.length || !persons.length || !this.webgl()) {
      this.hide();
      return null;
    }
    this.drawn = [];
    const now = performance.now();
    const dt = this.lastDraw === null ? 1 / 30 : Math.min((now - this.lastDraw) / 1000, 0.5);
    this.lastDraw = now;
    this.wanted = Math.min(persons.length, MAX_INSTANCES);
    this.addInstances();
    this.size = poses.size;
    this.posesId = poses.id;
    const [frameWidth, frameHeight] = poses.size;
    Object.assign(this.camera, { left: 0, right: frameWidth, top: 0, bottom: -frameHeight });
    this.camera.updateProjectionMatrix();
    const [glWidth, glHeight] = [Math.round(width * this.scale), Math.round(height * this.scale)];
    if (this.canvas.width !== glWidth || this.canvas.height !== glHeight) this.renderer.setSize(glWidth, glHeight, false);
    const shown = persons.slice(0, this.avatars.length);
    this.avatars.forEach((avatar, i) => {
      const person = shown[i];
      avatar.vrm.scene.visible = person !== undefined;
      if (!person) return;
      // Lower in the frame is nearer the camera, as the 2D scene draws people (one pass draws them all).
      avatar.pose(person.body3d, expr, dt, person.body3d.hips[1] * DEPTH_PER_PIXEL);
      this.drawn.push({ person, avatar });
    });
    const start = performance.now();
    this.renderer.clear();
    this.renderer.render(this.scene, this.camera);
    this.mirror = mirror;
    this.canvas.classList.toggle("mirrored", mirror);
    this.canvas.hidden = false;
    return this.done(start);
  }

  /** Resolves to performance.now() when the GPU (or SwiftShader) has done what was asked of it so far, and folds
   * the time since `start` into the dynamic resolution's cost. */
  done(start) {
    const gl = this.renderer.getContext();
    const fence = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
    gl.flush();
    return new Promise((resolve) => {
      const poll = () => {
        if (fence && gl.clientWaitSync(fence, 0, 0) === gl.TIMEOUT_EXPIRED) return setTimeout(poll, FENCE_POLL_MS);
        if (fence) gl.deleteSync(fence);
        const at = performance.now();
        this.adapt(at - start);
        resolve(at);
      };
      setTimeout(poll, FENCE_POLL_MS);
    });
  }

  /**
   * For tests and snapshots: the layer as shown, drawn into `ctx` (the scene canvas's size) over what it holds.
   * The layer is rendered again first: a WebGL canvas's pixels are gone once composited.
   * @param {CanvasRenderingContext2D} ctx
   */
  composite(ctx) {
    if (this.canvas.hidden || !this.renderer) return;
    const { width, height } = ctx.canvas;
    this.renderer.clear();
    this.renderer.render(this.scene, this.camera);
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    if (this.mirror) ctx.setTransform(-1, 0, 0, 1, width, 0);
    ctx.drawImage(this.canvas, 0, 0, width, height);
    ctx.restore();
  }

  /** Dynamic resolution: fold this frame's drawing time into the running cost, and change the scale if due. */
  adapt(costMs) {
    if (this.fixedScale !== null) return;
    // The first frame at a scale pays for the resized buffers (and, for a new VRM, its shaders): not counted.
    this.held += 1;
    if (this.held === 1) return;
    this.cost = this.held === 2 ? costMs : this.cost + COST_WEIGHT * (costMs - this.cost);
    const next = nextRenderScale(this.scale, this.cost, this.held);
    if (next !== this.scale) Object.assign(this, { scale: next, held: 0 });
  }

  /**
   * For tests and benchmarks: per person drawn last, the VRM's humanoid joints projected by the scene's camera
   * into frame pixels (unmirrored, as the keypoints are), the 2D keypoints they are compared with, the person's
   * body3d (what the server sent) and the bone rotations set on the VRM, read back (in VRM 1.0 axes).
   * @returns {{track_id: number, id: number, joints: Object<string, number[]>, keypoints: number[][],
   *   body3d: object, bones: Object<string, number[]>}[]}
   */
  joints3d() {
    const [w, h] = this.size;
    const point = new THREE.Vector3();
    return this.drawn.map(({ person, avatar }) => {
      const joints = {};
      for (const bone of PROJECTED) {
        if (!avatar.joint(bone, point)) continue;
        point.project(this.camera);
        joints[bone] = [((point.x + 1) / 2) * w, ((1 - point.y) / 2) * h];
      }
      const bones = {};
      for (const bone of Object.keys(person.body3d.bones)) {
        const node = avatar.node(bone);
        if (!node) continue;
        const { x, y, z, w: qw } = node.quaternion;
        bones[bone] = avatar.flip ? [-x, y, -z, qw] : [x, y, z, qw];
      }
      return { id: this.posesId, track_id: person.track_id, joints, keypoints: person.keypoints, body3d: person.body3d, bones };
    });
  }
}
