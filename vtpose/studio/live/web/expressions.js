// The avatar's own life: blinking, breathing, and the mouth opening with the microphone's level.
//
// One `Expressions` per page; its `state(nowMs)` is what both renderers draw: {blink 0..1 (1 = eyes shut),
// mouth 0..1 (1 = wide open), breath -1..1 (a slow sine the 3D renderer adds to the spine and chest)}.
// Blinks come on their own every few seconds, at jittered intervals from a seeded generator, so a page given the
// same clock blinks at the same moments. The microphone is opened only by `startMicrophone()` (the capture page's
// "mouth from microphone" toggle, off by default): Web Audio's AnalyserNode gives the signal's RMS level, which is
// smoothed (fast attack, slower release) over a noise floor. Nothing is recorded, kept or sent: the level is read
// and dropped on each call, and only the 0..1 mouth number leaves the page (to the output view, as `expr`).
// `stopMicrophone()` stops the track, which releases the device (the browser's recording indicator goes off).

export const NEUTRAL = Object.freeze({ blink: 0, mouth: 0, breath: 0 });
export const EYES_SHUT = 0.8; // from this blink on, a face's eyes are drawn shut (a closed-eye line)
export const MOUTH_OPEN = 0.05; // below this the mouth is drawn closed, as draw.py draws it
// The pages redraw between poses for a changed face at most this often: a blink (~150 ms) still shows in 4-5
// frames, and a talking mouth does not redraw the scene at the display's 60 Hz on a busy machine.
export const FACE_REDRAW_MS = 1000 / 30;

/** Whether the face drawn (`shown`) differs visibly from `state`: blink or mouth by a hundredth or more. */
export function faceChanged(state, shown) {
  const moved = (a, b) => Math.round(a * 100) !== Math.round(b * 100);
  return !shown || moved(state.blink, shown.blink) || moved(state.mouth, shown.mouth);
}

const BLINK_CLOSE_MS = 60; // eyelids down...
const BLINK_OPEN_MS = 90; // ...and up again: a ~150 ms blink
const BLINK_MIN_GAP_MS = 2500; // from one blink to the next: uniform in [min, max]
const BLINK_MAX_GAP_MS = 6000;
const FIRST_BLINK_MS = 1500; // the first blink comes within this after start
const BREATH_HZ = 0.25; // a breath every 4 s
// Microphone level (dBFS of the RMS over one analyser window) to mouth: closed at the floor, fully open at FULL.
export const MOUTH_FLOOR_DB = -50;
export const MOUTH_FULL_DB = -18;
const ATTACK_MS = 35; // the mouth opens this fast (time constant)...
const RELEASE_MS = 160; // ...and closes this fast, so syllables read as movement and not as flicker
const ANALYSER_SIZE = 1024; // samples per level reading (~21 ms at 48 kHz)
const DEFAULT_SEED = 0x9e3779b9;

/** A small seeded generator (mulberry32): the same seed gives the same blinks. */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const clamp01 = (v) => Math.min(1, Math.max(0, v));

/** How shut the eyes are `sinceMs` after a blink started (0 outside it). */
export function blinkShape(sinceMs) {
  if (sinceMs < 0 || sinceMs >= BLINK_CLOSE_MS + BLINK_OPEN_MS) return 0;
  return sinceMs < BLINK_CLOSE_MS ? sinceMs / BLINK_CLOSE_MS : 1 - (sinceMs - BLINK_CLOSE_MS) / BLINK_OPEN_MS;
}

/** A microphone level in dBFS to a mouth opening 0..1 (the noise floor and below: closed). */
export function mouthFromLevel(db) {
  return clamp01((db - MOUTH_FLOOR_DB) / (MOUTH_FULL_DB - MOUTH_FLOOR_DB));
}

export class Expressions {
  /**
   * @param {object} [options]
   * @param {boolean} [options.enabled=true] false: always NEUTRAL (the pages' `?expr=off`, for pixel tests)
   * @param {number} [options.seed] seeds the blink intervals
   * @param {number} [options.startMs] the clock's start (default: performance.now())
   */
  constructor({ enabled = true, seed = DEFAULT_SEED, startMs = performance.now() } = {}) {
    this.enabled = enabled;
    this.random = seeded(seed);
    this.startMs = startMs;
    this.nextBlinkMs = startMs + this.random() * FIRST_BLINK_MS;
    this.blinks = 0; // blinks begun so far
    this.mouth = 0; // the smoothed mouth opening
    this.lastMs = null; // when the mouth was last smoothed
    this.remote = null; // {blink, mouth} from the capture page (the output view), replacing its own
    this.audio = null; // {context, analyser, stream, samples} while the microphone is on
  }

  get microphoneOn() {
    return this.audio !== null;
  }

  /** The expression at `nowMs` (performance.now() clock); call it with increasing times. */
  state(nowMs) {
    if (!this.enabled) return NEUTRAL;
    const breath = Math.sin(2 * Math.PI * BREATH_HZ * ((nowMs - this.startMs) / 1000));
    if (this.remote) return { blink: this.remote.blink, mouth: this.remote.mouth, breath };
    while (nowMs >= this.nextBlinkMs + BLINK_CLOSE_MS + BLINK_OPEN_MS) {
      this.nextBlinkMs += BLINK_CLOSE_MS + BLINK_OPEN_MS + BLINK_MIN_GAP_MS + this.random() * (BLINK_MAX_GAP_MS - BLINK_MIN_GAP_MS);
      this.blinks += 1;
    }
    return { blink: blinkShape(nowMs - this.nextBlinkMs), mouth: this.smoothMouth(nowMs), breath };
  }

  /** The output view: take the capture page's blink and mouth (an `expr` message) instead of its own. */
  setRemote({ blink, mouth }) {
    this.remote = { blink: clamp01(Number(blink) || 0), mouth: clamp01(Number(mouth) || 0) };
  }

  /** The microphone's level now, in dBFS (-Infinity when silent or off). */
  levelDb() {
    if (!this.audio) return -Infinity;
    const { analyser, samples } = this.audio;
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    return rms > 0 ? 20 * Math.log10(rms) : -Infinity;
  }

  smoothMouth(nowMs) {
    const target = this.audio ? mouthFromLevel(this.levelDb()) : 0;
    const dt = this.lastMs === null ? 0 : Math.max(0, nowMs - this.lastMs);
    this.lastMs = nowMs;
    const tau = target > this.mouth ? ATTACK_MS : RELEASE_MS;
    this.mouth += (target - this.mouth) * (1 - Math.exp(-dt / tau));
    if (!this.audio && this.mouth < 0.005) this.mouth = 0;
    return this.mouth;
  }

  /** Open the microphone (asks the user) and follow its level; nothing is recorded. */
  async startMicrophone() {
    if (this.audio) return;
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: false },
      video: false,
    });
    const context = new AudioContext();
    await context.resume(); // created from the toggle's click, so it may start
    const analyser = context.createAnalyser();
    analyser.fftSize = ANALYSER_SIZE;
    // Source -> analyser, and nothing else: not to the speakers, not to a recorder.
    context.createMediaStreamSource(stream).connect(analyser);
    this.audio = { context, analyser, stream, samples: new Float32Array(analyser.fftSize) };
  }

  /** Release the microphone: its tracks stopped, the audio graph closed; the mouth closes. */
  async stopMicrophone() {
    const audio = this.audio;
    if (!audio) return;
    this.audio = null;
    for (const track of audio.stream.getTracks()) track.stop();
    await audio.context.close();
  }
}

const EXPR_MAX_PER_S = 30;
const EXPR_DECIMALS = 2; // values are sent rounded to this; a smaller change is no change
const rounded = (v) => Number(v.toFixed(EXPR_DECIMALS));

/**
 * The capture page's side of `expr` messages: at most EXPR_MAX_PER_S a second, and only when blink or mouth
 * changed (rounded to EXPR_DECIMALS), so a still face sends nothing.
 */
export class ExprSender {
  /** @param {(message: object) => void} send e.g. the socket's sendJSON */
  constructor(send) {
    this.send = send;
    this.last = null; // the last message sent
    this.lastAtMs = -Infinity;
    this.sent = 0;
    this.enabled = true; // false once the server said it does not take `expr` (an older server)
  }

  /** Offer the state at `nowMs`; sends it when it changed and the rate allows (a later offer sends the rest). */
  offer({ blink, mouth }, nowMs) {
    const message = { type: "expr", blink: rounded(blink), mouth: rounded(mouth) };
    if (!this.enabled) return false;
    if (this.last && this.last.blink === message.blink && this.last.mouth === message.mouth) return false;
    if (nowMs - this.lastAtMs < 1000 / EXPR_MAX_PER_S) return false;
    this.send(message);
    this.last = message;
    this.lastAtMs = nowMs;
    this.sent += 1;
    return true;
  }

  /** After a reconnect the output view may have missed the last value: send it again on the next offer. */
  reset() {
    this.last = null;
  }
}
