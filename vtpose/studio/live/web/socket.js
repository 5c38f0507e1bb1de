// The studio's WebSocket: binary frames out (one in flight), JSON messages in, reconnecting after a drop.
//
// Message formats are vtpose/studio/live/protocol.py's: a frame is [kind 1][uint32 id][float64 capture ms] + JPEG,
// little endian; a background image is [kind 2] + the image bytes.

const FRAME = 1;
const BACKGROUND = 2;
const HEADER_BYTES = 13;
// Closes that a retry cannot fix: policy (origin, flood), bad URL, pairing code in use.
const PAIR_IN_USE = 4409;
const FINAL_CLOSES = new Set([1008, 4400, PAIR_IN_USE]);

export class StudioSocket extends EventTarget {
  /**
   * @param {string} role "capture" or "output"
   * @param {string|null} pair the pairing code (required for output views)
   */
  constructor(role, pair) {
    super();
    this.role = role;
    this.pair = pair;
    this.ws = null;
    this.retryMs = 500;
    this.inFlight = null; // the id of the frame whose poses are awaited
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const base = new URL("ws", location.href); // relative to the studio's mount point
    base.protocol = scheme;
    base.searchParams.set("role", this.role);
    if (this.pair) base.searchParams.set("pair", this.pair);
    return base.href;
  }

  connect() {
    const ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.retryMs = 500;
      this.emit("open", {});
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") {
        const bytes = new Uint8Array(event.data);
        if (bytes[0] === BACKGROUND) this.emit("background", { blob: new Blob([bytes.subarray(1)]) });
        return;
      }
      const message = JSON.parse(event.data);
      if (message.type === "poses" || (message.type === "error" && message.id === this.inFlight)) this.inFlight = null;
      if (message.type === "welcome" && message.pair) this.pair = message.pair;
      this.emit(message.type, message);
    };
    ws.onclose = (event) => {
      this.inFlight = null;
      if (event.code === PAIR_IN_USE && this.role === "capture") {
        // Another tab holds this page's saved pairing code: take a fresh one.
        this.pair = null;
        this.connect();
        return;
      }
      this.emit("close", { code: event.code, reason: event.reason });
      if (!FINAL_CLOSES.has(event.code)) {
        setTimeout(() => this.connect(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, 8000);
      }
    };
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send one encoded frame unless one is already in flight; returns whether it was sent. */
  async sendFrame(id, captureMs, blob) {
    if (!this.open || this.inFlight !== null) return false;
    this.inFlight = id;
    const header = new DataView(new ArrayBuffer(HEADER_BYTES));
    header.setUint8(0, FRAME);
    header.setUint32(1, id, true);
    header.setFloat64(5, captureMs, true);
    this.ws.send(new Blob([header.buffer, blob]));
    return true;
  }

  sendJSON(message) {
    if (this.open) this.ws.send(JSON.stringify(message));
  }

  sendBackground(blob) {
    if (this.open) this.ws.send(new Blob([new Uint8Array([BACKGROUND]), blob]));
  }
}
