// The frame pump: camera frames -> encoded frames on the socket, one in flight, and what each one's trip cost.
//
// The newest camera frame is sent as soon as the previous frame's answer is back; frames the camera delivers
// meanwhile are replaced, never queued. When the answer is due before the next camera frame would arrive, the
// newest frame is encoded ahead, so sending it does not wait for the encoder.

import { everyFrame } from "./camera.js";

const PENDING_KEEP = 8; // sent frames whose measurements are kept until their answer (older ones are given up)
const MAX_FRAME_GAP_MS = 200; // a longer gap (a paused video) is not the camera's frame interval
// An answer this many camera frames later than expected leaves the frame encoded ahead stale.
const STALE_FRAMES = 1.5;

const smooth = (old, value) => (old ? 0.8 * old + 0.2 * value : value);

export class FramePump {
  /**
   * @param {import("./socket.js").StudioSocket} socket where frames go; its `inFlight` is the one frame in flight
   * @param {import("./camera.js").FrameGrabber} grabber downscales and encodes the video's current frame
   * @param {import("./stats.js").Stats} stats counts frames sent and dropped
   */
  constructor(socket, grabber, stats) {
    this.socket = socket;
    this.grabber = grabber;
    this.stats = stats;
    this.frameId = 0;
    this.pending = new Map(); // frame id -> what the page measured before sending it
    this.grabbing = false;
    this.latestMs = null; // capture time of the newest camera frame
    this.sentMs = null; // capture time of the last frame sent (or encoded ahead)
    this.ready = null; // a frame encoded ahead, waiting for the answer to the one in flight
    this.sentAt = 0;
    this.frameGapMs = 33; // the camera's frame interval, smoothed
    this.roundTripMs = 0; // send to answer drawn, smoothed
    this.encodeMs = 0; // grab and encode, smoothed
  }

  /**
   * Follow `video`'s frames and the socket. Call it after the page's own `poses` listener: an answer is drawn
   * before the next frame is grabbed, and the round trip measured includes drawing it.
   */
  start(video) {
    everyFrame(video, (captureMs) => this.newFrame(captureMs));
    this.socket.addEventListener("poses", () => {
      this.roundTripMs = smooth(this.roundTripMs, performance.now() - this.sentAt);
      this.pump();
    });
    this.socket.addEventListener("close", () => (this.ready = null));
    this.socket.addEventListener("error", () => this.pump());
    this.socket.addEventListener("open", () => this.pump());
  }

  newFrame(captureMs) {
    if (this.latestMs !== null && this.latestMs !== this.sentMs) this.stats.dropped += 1; // replaced before sent
    if (this.latestMs !== null) this.frameGapMs = smooth(this.frameGapMs, Math.min(captureMs - this.latestMs, MAX_FRAME_GAP_MS));
    this.latestMs = captureMs;
    this.pump();
  }

  async pump() {
    if (this.grabbing || !this.socket.open || this.latestMs === null) return;
    this.grabbing = true;
    try {
      if (this.socket.inFlight === null) await this.sendNext();
      else if (this.latestMs !== this.sentMs && this.roundTripMs) await this.encodeAheadIfDue();
    } finally {
      this.grabbing = false;
    }
    if (this.socket.inFlight === null && this.ready) this.pump(); // the answer came while encoding ahead
  }

  /** Nothing in flight: send the frame encoded ahead if it is still fresh, else encode and send the newest. */
  async sendNext() {
    if (this.ready && this.latestMs - this.ready.captureMs > STALE_FRAMES * this.frameGapMs) {
      this.ready = null;
      this.sentMs = null;
    }
    if (this.ready) {
      const frame = this.ready;
      this.ready = null;
      this.send(frame);
    } else if (this.latestMs !== this.sentMs) {
      this.sentMs = this.latestMs;
      const frame = await this.encode(this.latestMs);
      if (frame) this.send(frame);
    }
  }

  /** A frame in flight: encode the newest ahead only when the answer is due within a camera frame (else a later
   * camera frame will be fresher when it is). */
  async encodeAheadIfDue() {
    const due = this.sentAt + this.roundTripMs - this.encodeMs;
    if (performance.now() + this.frameGapMs >= due) {
      this.sentMs = this.latestMs;
      this.ready = await this.encode(this.latestMs);
    }
  }

  async encode(captureMs) {
    const grabAt = performance.now();
    const grabbed = await this.grabber.grab();
    if (!grabbed) return null;
    this.encodeMs = smooth(this.encodeMs, grabbed.drawMs + grabbed.encodeMs);
    return { captureMs, grabAt, ...grabbed };
  }

  send(frame) {
    const id = (this.frameId + 1) >>> 0;
    this.frameId = id;
    if (!this.socket.sendFrame(id, frame.captureMs, frame.blob)) return;
    this.sentAt = performance.now();
    this.stats.sent += 1;
    this.pending.set(id, { grabAt: frame.grabAt, drawMs: frame.drawMs, encodeMs: frame.encodeMs, sentAt: this.sentAt });
    if (this.pending.size > PENDING_KEEP) this.pending.delete(this.pending.keys().next().value);
  }

  /**
   * Where a drawn answer's capture-to-screen time went, ms: a Stats record, or null for a frame this pump did
   * not send or has given up on.
   * @param {object} poses the `poses` message
   * @param {{received: number, drawStart: number, drawnAt: number}} times performance.now() when it arrived,
   *   when drawing it began and when it was drawn
   */
  measure(poses, { received, drawStart, drawnAt }) {
    const sent = this.pending.get(poses.id);
    this.pending.delete(poses.id);
    if (!sent) return null;
    const { decode, model, track } = poses.timing_ms;
    return {
      id: poses.id,
      latency: drawnAt - poses.capture_ms,
      capture: sent.grabAt - poses.capture_ms,
      encode: sent.drawMs + sent.encodeMs,
      ahead: sent.sentAt - sent.grabAt - sent.drawMs - sent.encodeMs, // an encoded-ahead frame's wait to be sent
      network: received - sent.sentAt - (decode + model + track),
      decode,
      model,
      track,
      draw: drawnAt - drawStart,
      drawnAt,
      persons: poses.persons.length,
    };
  }
}
