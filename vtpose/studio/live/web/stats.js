// Live measurements: frames drawn per second, capture-to-screen latency and where the time goes.

const KEEP = 1200; // frames of history kept (a minute at 20 fps)

export class Stats {
  constructor() {
    this.drawTimes = []; // performance.now() of each frame drawn
    this.frames = []; // per frame: latency and its stages, ms
    this.tracks = []; // per frame: [track id, box area] of each person drawn
    this.dropped = 0; // camera frames replaced by a newer one before they could be sent (one in flight)
    this.sent = 0;
    this.drawn = 0; // frames drawn since the page opened
  }

  add(record, trackIds) {
    this.drawn += 1;
    this.drawTimes.push(record.drawnAt);
    this.frames.push(record);
    this.tracks.push(trackIds);
    for (const list of [this.drawTimes, this.frames, this.tracks]) if (list.length > KEEP) list.shift();
  }

  fps(windowMs = 2000) {
    const now = performance.now();
    const recent = this.drawTimes.filter((t) => now - t <= windowMs);
    if (recent.length < 2) return 0;
    return ((recent.length - 1) * 1000) / Math.max(recent[recent.length - 1] - recent[0], 1);
  }

  percentile(key, q, last = 60) {
    const values = this.frames.slice(-last).map((f) => f[key]).filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
    if (!values.length) return NaN;
    return values[Math.min(values.length - 1, Math.floor(q * values.length))];
  }

  /** For tests and benchmarks: everything measured so far, as plain data. */
  snapshot() {
    return { fps: this.fps(), frames: this.frames.slice(), tracks: this.tracks.slice(), dropped: this.dropped, sent: this.sent, drawn: this.drawn };
  }
}
