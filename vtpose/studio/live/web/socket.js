// The studio's WebSocket: binary frames out (one in flight), JSON messages in, reconnecting after a drop.
//
// Message formats are vtpose/studio/live/protocol.py's, and so are their numbers: the message kinds, the frame
// header's layout and the close codes come from the server's config (`protocol` in api/config), never from here.
// A frame is [header] + JPEG, the header written field by field from the server's struct format (kind, frame id,
// capture ms); a background image is [kind] + the image bytes, and so is a VRM file.

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 8000;
// The struct field types this page can write: [bytes, DataView setter].
const STRUCT_FIELDS = { B: [1, "setUint8"], I: [4, "setUint32"], d: [8, "setFloat64"] };

/**
 * A packer for a little-endian Python struct format such as "<BId" (no padding, as Python's "<" has none).
 * @param {string} format the server's struct format
 * @returns {(...values: number[]) => ArrayBuffer} packs one value per field
 */
export function structPacker(format) {
  const types = [...format.slice(1)];
  if (format[0] !== "<" || types.some((c) => !(c in STRUCT_FIELDS))) {
    const writes = `little-endian "<" with ${Object.keys(STRUCT_FIELDS).join(", ")}`;
    throw new Error(`the server's frame header format ${format} is not one this page writes (${writes}); reload the page`);
  }
  const fields = types.map((c) => STRUCT_FIELDS[c]);
  const size = fields.reduce((total, [bytes]) => total + bytes, 0);
  return (...values) => {
    if (values.length !== fields.length) throw new Error(`${format} packs ${fields.length} values, got ${values.length}`);
    const view = new DataView(new ArrayBuffer(size));
    let offset = 0;
    fields.forEach(([bytes, setter], i) => {
      view[setter](offset, values[i], true);
      offset += bytes;
    });
    return view.buffer;
  };
}

export class StudioSocket extends EventTarget {
  /**
   * @param {object} protocol the config's `protocol`: {frame, background, frame_header, close: {name: code}, final_closes}
   * @param {string} role "capture" or "output"
   * @param {string|null} pair the pairing code (required for output views)
   */
  constructor(protocol, role, pair) {
    super();
    this.protocol = protocol;
    this.packHeader = structPacker(protocol.frame_header);
    this.role = role;
    this.pair = pair;
    this.ws = null;
    this.retryMs = FIRST_RETRY_MS;
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
      this.retryMs = FIRST_RETRY_MS;
      this.emit("open", {});
    };
    ws.onmessage = (event) => this.received(event.data);
    ws.onclose = (event) => this.closed(event.code, event.reason);
  }

  received(data) {
    if (typeof data !== "string") {
      const bytes = new Uint8Array(data);
      if (bytes[0] === this.protocol.background) this.emit("background", { blob: new Blob([bytes.subarray(1)]) });
      else if (bytes[0] === this.protocol.vrm) this.emit("vrm-file", { bytes: bytes.slice(1).buffer });
      return;
    }
    const message = JSON.parse(data);
    if (message.type === "poses" || (message.type === "error" && message.id === this.inFlight)) this.inFlight = null;
    if (message.type === "welcome" && message.pair) this.pair = message.pair;
    this.emit(message.type, message);
  }

  closed(code, reason) {
    this.inFlight = null;
    if (code === this.protocol.close.pair_in_use && this.role === "capture") {
      // Another tab holds this page's saved pairing code: take a fresh one.
      this.pair = null;
      this.connect();
      return;
    }
    this.emit("close", { code, reason });
    if (!this.protocol.final_closes.includes(code)) {
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    }
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send one encoded frame unless one is already in flight; returns whether it was sent. */
  sendFrame(id, captureMs, blob) {
    if (!this.open || this.inFlight !== null) return false;
    this.inFlight = id;
    this.ws.send(new Blob([this.packHeader(this.protocol.frame, id, captureMs), blob]));
    return true;
  }

  sendJSON(message) {
    if (this.open) this.ws.send(JSON.stringify(message));
  }

  sendBackground(blob) {
    if (this.open) this.ws.send(new Blob([new Uint8Array([this.protocol.background]), blob]));
  }

  /** Send a VRM file's bytes (an ArrayBuffer) as the binary VRM message. */
  sendVrm(bytes) {
    if (this.open) this.ws.send(new Blob([new Uint8Array([this.protocol.vrm]), bytes]));
  }
}
