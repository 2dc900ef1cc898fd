/**
 * gotalk-client.js: a small Gotalk (protocol version 1) client for browsers.
 *
 * Our own code, written from PROTOCOL.md, framed exactly as gotalk.js frames its
 * WebSocket traffic: binary messages; the version "01", every header and every
 * non-empty payload is its own message; a received message is a header and, if
 * that header announces a non-empty payload, the next message is that payload.
 * It owns one connection's protocol state and renders nothing. It answers single
 * requests from the other side; stream requests to it are refused with `E`.
 * Request IDs are 4 opaque bytes, held as one-char-per-byte strings, never UTF-8.
 *
 * @module gotalk-client
 */

const VERSION = "01";
const ID_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz";
/** Protocol error codes, as carried by an `f` message. */
export const ErrorCode = Object.freeze({ ABNORMAL: 0, UNSUPPORTED: 1, INVALID: 2, TIMEOUT: 3 });
/** gotalk.js closes with 4000 + the protocol error code (the Go server uses 1000); 4000-4999 is all a page may use. */
const closeCode = (/** @type {number} */ code) => 4000 + (code < 1000 ? code : 0);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** @typedef {Uint8Array | ArrayBuffer | string} PayloadLike  strings are sent as UTF-8 */
/**
 * A decoded header; `size` is the length of the payload that follows it.
 * @typedef {{type: string, id?: string, name?: string, size: number,
 *            wait?: number, load?: number, time?: number, code?: number}} Header
 */
/** One WebSocket message, kept for teaching: which way, what role, binary or text, its bytes.
 * @typedef {{dir: "out"|"in", role: "version"|"header"|"payload", binary: boolean, bytes: Uint8Array}} WireFrame */
/** @typedef {(payload: Uint8Array, client: Client) => PayloadLike | Promise<PayloadLike>} OperationHandler */

/** The other side answered with an ErrorResult (`E`); `message` is its text. */
export class RequestError extends Error {
  /** @param {string} operation @param {Uint8Array} payload */
  constructor(operation, payload) {
    super(decoder.decode(payload));
    this.name = "RequestError";
    this.operation = operation;
    this.payload = payload;
  }
}

/** @param {PayloadLike} value @returns {Uint8Array} */
function toBytes(value) {
  if (value == null) return new Uint8Array(0);
  if (typeof value === "string") return encoder.encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError("a payload must be a Uint8Array, an ArrayBuffer or a string");
}

const hex = (/** @type {number} */ n, /** @type {number} */ width) => n.toString(16).padStart(width, "0");
/** One char per byte, both ways: request IDs are 4 opaque bytes (the Go peer's are binary), never UTF-8. */
const latin1 = (/** @type {Uint8Array} */ bytes) => String.fromCharCode(...bytes);
const unlatin1 = (/** @type {string} */ text) => Uint8Array.from(text, (c) => c.charCodeAt(0));

/** @param {Uint8Array[]} parts @returns {Uint8Array} the parts end to end */
function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

/** Read exactly `width` hex digits at `offset`; throw naming the field otherwise. */
function readHex(/** @type {Uint8Array} */ bytes, offset, width, field) {
  const text = latin1(bytes.subarray(offset, offset + width));
  if (text.length !== width || !/^[0-9a-fA-F]+$/.test(text)) {
    throw new Error(`bad ${field} at byte ${offset}: expected ${width} hex digits, found ${JSON.stringify(text)}`);
  }
  return parseInt(text, 16);
}

/**
 * Decode one header message. It must hold exactly one header: a peer that packs
 * the payload into the same WebSocket message breaks gotalk.js, so it is refused.
 * @param {Uint8Array} bytes @returns {Header}
 */
export function parseHeader(bytes) {
  const type = String.fromCharCode(bytes[0]);
  const id = () => latin1(bytes.subarray(1, 5));
  let header, end;
  if (type === "r" || type === "s" || type === "n") {
    const at = type === "n" ? 1 : 5; // where the 3-digit name size starts
    const nameSize = readHex(bytes, at, 3, "name size");
    const name = decoder.decode(bytes.subarray(at + 3, at + 3 + nameSize));
    end = at + 3 + nameSize + 8;
    header = { type, name, size: readHex(bytes, end - 8, 8, "payload size") };
    if (type !== "n") header.id = id();
  } else if ("RSEp".includes(type)) {
    header = { type, id: id(), size: readHex(bytes, 5, 8, "payload size") }, end = 13;
  } else if (type === "e") {
    header = { type, id: id(), wait: readHex(bytes, 5, 8, "wait"), size: readHex(bytes, 13, 8, "payload size") }, end = 21;
  } else if (type === "h") {
    header = { type, load: readHex(bytes, 1, 4, "load"), time: readHex(bytes, 5, 8, "time"), size: 0 }, end = 13;
  } else if (type === "f") {
    header = { type, code: readHex(bytes, 1, 8, "code"), size: 0 }, end = 9;
  } else {
    throw new Error(`unknown message type ${JSON.stringify(type)} at byte 0`);
  }
  if (bytes.length !== end) throw new Error(`a ${type} header is ${end} bytes; this message has ${bytes.length}`);
  return header;
}

/** Encode a header (never its payload). @param {Header} h @returns {Uint8Array} */
export function encodeHeader(h) {
  const name = h.name === undefined ? null : encoder.encode(h.name);
  if (name && name.length > 0xfff) throw new RangeError(`a name is at most 4095 bytes of UTF-8, not ${name.length}`);
  const size = hex(h.size ?? 0, 8);
  const text = {
    r: () => [h.id, hex(name.length, 3), name, size], s: () => [h.id, hex(name.length, 3), name, size],
    n: () => [hex(name.length, 3), name, size], e: () => [h.id, hex(h.wait, 8), size],
    h: () => [hex(h.load, 4), hex(h.time, 8)], f: () => [hex(h.code, 8)],
  }[h.type]?.() ?? [h.id, size]; // R S E p
  return concat([h.type, ...text].map((x) => (typeof x === "string" ? unlatin1(x) : x))); // only names are UTF-8
}

/**
 * Open a Gotalk connection and finish the handshake.
 * @param {string} url  e.g. `ws://${location.host}/gotalk/`
 * @param {{heartbeatInterval?: number, maxRetries?: number, keepFrames?: number}} [options]
 *   heartbeatInterval: seconds between our heartbeats (gotalk.js: 20; 0 = none);
 *   maxRetries: resends after RetryResults; keepFrames: how many WireFrames `frames` keeps.
 * @returns {Promise<Client>} resolves once the server's version "01" has arrived
 */
export function connect(url, options = {}) {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const client = new Client(ws, options);
  return client.ready.then(() => client);
}

/** One end of a Gotalk connection over a browser WebSocket. Create it with `connect`. */
export class Client {
  /** @param {WebSocket} ws @param {{heartbeatInterval?: number, maxRetries?: number, keepFrames?: number}} options */
  constructor(ws, { heartbeatInterval = 20, maxRetries = 5, keepFrames = 1000 } = {}) {
    this.ws = ws;
    Object.assign(this, { heartbeatEvery: heartbeatInterval, maxRetries, keepFrames });
    /** @type {WireFrame[]} every WebSocket message sent and received, oldest dropped past keepFrames */
    this.frames = [];
    /** @type {{load: number, time: number} | null} the last heartbeat received (otherwise ignored) */
    this.lastHeartbeat = null;
    this.nextId = 0;
    this.pending = new Map(); // our requests in flight, by ID
    this.handlers = new Map(); // operations the server may call
    this.listeners = new Map(); // notification name -> functions ("*" hears all)
    this.refusedStreams = new Set(); // stream requests we refused: their parts are dropped
    this.awaitingPayload = null; // a header whose payload is the next message
    this.versionSeen = false;
    /** @type {string | null} the protocol error this side found, if it closed because of one */
    this.protocolFailure = null;
    /** @type {Promise<{code: number, reason: string}>} settles when the socket has closed */
    this.closed = new Promise((resolve) => ws.addEventListener("close", (e) => resolve(this.#closedBy(e))));
    this.ready = new Promise((resolve, reject) => ((this.handshake = { resolve, reject })));
    ws.addEventListener("open", () => this.#write("version", encoder.encode(VERSION))); // its own message
    ws.addEventListener("message", (e) => this.#received(e.data));
  }

  /** Send a single request; resolves with the result bytes, rejects with RequestError on `E`.
   * @param {string} op @param {PayloadLike} [payload] @returns {Promise<Uint8Array>} */
  request(op, payload) {
    const bytes = toBytes(payload);
    return this.#ask(op, false, (id) => this.#send({ type: "r", id, name: op, size: bytes.length }, bytes));
  }

  /** Send `value` as JSON; resolve with the result parsed from JSON. @param {string} op @param {any} value */
  async requestJSON(op, value) {
    return JSON.parse(decoder.decode(await this.request(op, JSON.stringify(value ?? null))));
  }

  /**
   * A stream request: `s` carries the operation and the first part, `p` the rest,
   * an empty `p` ends it. Resolves with the result parts (`S` until an empty `S`).
   * @param {string} op @param {PayloadLike[]} parts
   * @param {(part: Uint8Array) => void} [onPart] told of each result part as it arrives
   * @returns {Promise<Uint8Array[]>}
   */
  streamRequest(op, parts, onPart) {
    const [first = new Uint8Array(0), ...rest] = parts.map(toBytes);
    return this.#ask(op, true, (id) => {
      this.#send({ type: "s", id, name: op, size: first.length }, first);
      for (const part of rest.filter((p) => p.length)) this.#send({ type: "p", id, size: part.length }, part);
      this.#send({ type: "p", id, size: 0 });
    }, onPart);
  }

  /** Send a notification (never answered). @param {string} name @param {PayloadLike} [payload] */
  notify(name, payload) {
    const bytes = toBytes(payload);
    this.#send({ type: "n", name, size: bytes.length }, bytes);
  }

  /** Answer requests for `op` from the other side: return the result, or throw for an `E`.
   * @param {string} op @param {OperationHandler} fn */
  handle(op, fn) { this.handlers.set(op, fn); }

  /** Listen for notification `name` ("*" for all; then fn also gets the name).
   * @param {string} name @param {(payload: Uint8Array, name: string) => void} fn */
  onNotification(name, fn) { this.listeners.set(name, [...(this.listeners.get(name) ?? []), fn]); }

  /** Close normally (1000); pending requests fail. */
  close(code = 1000, reason = "") { this.ws.close(code, reason); return this.closed; }

  // -- internals --------------------------------------------------------------

  /** Number a request, remember it, send it; `stream` requests resolve with their parts. */
  #ask(op, stream, sendRequest, onPart) {
    let id = null;
    for (let tries = 0; tries < 36 ** 4 && (id === null || this.pending.has(id)); tries++) {
      const n = this.nextId++ % 36 ** 4; // 4 base-36 ASCII digits, as gotalk.js numbers requests
      id = [3, 2, 1, 0].map((i) => ID_DIGITS[Math.floor(n / 36 ** i) % 36]).join("");
    }
    if (this.pending.has(id)) return Promise.reject(new Error("no free request ID"));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { op, stream, resolve, reject, parts: [], onPart, resend: () => sendRequest(id), attempts: 0 });
      try { sendRequest(id); } catch (error) { this.#settle(id, reject, error); }
    });
  }

  #write(role, bytes) {
    if (this.ws.readyState !== WebSocket.OPEN) throw new Error("the connection is not open");
    this.ws.send(bytes);
    this.#keep({ dir: "out", role, binary: true, bytes });
  }

  #keep(frame) {
    this.frames.push(frame);
    if (this.frames.length > this.keepFrames) this.frames.shift();
  }

  /** Header and payload go out as two messages; an empty payload is not sent at all. */
  #send(header, payload) {
    this.#write("header", encodeHeader(header));
    if (payload && payload.length) this.#write("payload", payload);
  }

  #received(data) {
    if (this.closing) return; // after a protocol error nothing more is read
    const binary = typeof data !== "string"; // gotalk.js also understands text frames
    const bytes = binary ? new Uint8Array(data) : encoder.encode(data);
    const role = !this.versionSeen ? "version" : this.awaitingPayload ? "payload" : "header";
    this.#keep({ dir: "in", role, binary, bytes });
    if (!this.versionSeen) {
      const version = latin1(bytes.subarray(0, 8));
      if (bytes.length !== 2 || version !== VERSION) return this.#protocolError(ErrorCode.UNSUPPORTED, `version ${JSON.stringify(version)}, not "01"`);
      this.versionSeen = true;
      this.handshake.resolve();
      if (this.heartbeatEvery > 0) this.#heartbeat(); // gotalk.js: one now, then every interval
      return;
    }
    if (this.awaitingPayload) {
      const header = this.awaitingPayload;
      this.awaitingPayload = null;
      if (bytes.length !== header.size) return this.#protocolError(ErrorCode.INVALID, `payload of ${bytes.length} bytes, header said ${header.size}`);
      return this.#dispatch(header, bytes);
    }
    let header;
    try { header = parseHeader(bytes); } catch (error) { return this.#protocolError(ErrorCode.INVALID, error.message); }
    if (header.size > 0) this.awaitingPayload = header;
    else this.#dispatch(header, new Uint8Array(0));
  }

  #dispatch(h, payload) {
    const request = this.pending.get(h.id);
    switch (h.type) {
      case "R": case "S": case "E": case "e":
        if (request) this.#result(h, payload, request);
        return; // an answer to nothing we asked: ignored
      case "r": return void this.#serve(h.id, h.name, payload);
      case "s": // this client runs single operations only; parts that follow are dropped
        this.refusedStreams.add(h.id);
        return this.#send(...this.#errorFor(h.id, this.handlers.has(h.name) ? "stream requests not supported" : `unknown operation "${h.name}"`));
      case "p":
        if (!this.refusedStreams.has(h.id)) return this.#protocolError(ErrorCode.INVALID, `part for unknown stream ${JSON.stringify(h.id)}`);
        if (!payload.length) this.refusedStreams.delete(h.id);
        return;
      case "n":
        for (const fn of this.listeners.get(h.name) ?? []) this.#safely(fn, payload, h.name);
        for (const fn of this.listeners.get("*") ?? []) this.#safely(fn, payload, h.name);
        return;
      case "h": this.lastHeartbeat = { load: h.load, time: h.time }; return; // never answered
      case "f": // the other side gives up; gotalk.js closes with 4000 + its code
        this.closing = true;
        return void this.ws.close(closeCode(h.code), `the server reported protocol error f${hex(h.code, 8)}`);
    }
  }

  #result(h, payload, request) {
    if (h.type === "e") { // retry, not before the wait the responder asked for
      if (++request.attempts > this.maxRetries) return this.#settle(h.id, request.reject, new RequestError(request.op, payload));
      return void setTimeout(() => this.pending.get(h.id) === request && this.#isOpen() && request.resend(), h.wait);
    }
    if (h.type === "E") return this.#settle(h.id, request.reject, new RequestError(request.op, payload));
    if (h.type === "R" || payload.length) request.parts.push(payload), request.onPart?.(payload);
    if (h.type === "S" && payload.length) return; // more parts to come, until an empty S
    // A single request answered with S parts gets them joined, as the Python peer does.
    this.#settle(h.id, request.resolve, request.stream ? request.parts : concat(request.parts));
  }

  #settle(id, fn, value) { this.pending.delete(id); fn(value); }

  async #serve(id, op, payload) {
    const fn = this.handlers.get(op);
    let reply;
    try {
      if (!fn) throw new Error(`unknown operation "${op}"`); // the Go peer's wording
      const result = toBytes(await fn(payload, this));
      reply = [{ type: "R", id, size: result.length }, result];
    } catch (error) {
      reply = this.#errorFor(id, error?.message ?? String(error));
    }
    if (this.#isOpen()) this.#send(...reply);
  }

  #errorFor(id, text) { const bytes = encoder.encode(text); return [{ type: "E", id, size: bytes.length }, bytes]; }

  #safely(fn, ...args) { try { fn(...args); } catch (error) { console.error("gotalk listener failed", error); } }

  #isOpen() { return this.ws.readyState === WebSocket.OPEN; }

  #heartbeat() {
    if (!this.#isOpen()) return;
    this.#send({ type: "h", load: 0, time: Math.floor(Date.now() / 1000) >>> 0 });
    this.heartbeatTimer = setTimeout(() => this.#heartbeat(), this.heartbeatEvery * 1000);
  }

  /** Tell the other side with `f`, then close with 4000 + code, as gotalk.js does. */
  #protocolError(code, why) {
    this.protocolFailure = `f${hex(code, 8)}: ${why}`;
    this.closing = true;
    if (this.#isOpen()) this.#send({ type: "f", code });
    this.ws.close(closeCode(code), this.protocolFailure.slice(0, 60)); // a close reason is at most 123 bytes
  }

  #closedBy(event) {
    clearTimeout(this.heartbeatTimer);
    // The close code may be the server's (it may close first on seeing our f): name our reason too.
    const ours = this.protocolFailure;
    const why = ours && (!event.reason || !ours.startsWith(event.reason)) ? `; we sent ${ours}` : "";
    const error = new Error(`connection closed (${event.code}${event.reason ? ": " + event.reason : ""})${why}`);
    for (const request of this.pending.values()) request.reject(error);
    this.pending.clear();
    if (!this.versionSeen) this.handshake.reject(error);
    return { code: event.code, reason: event.reason };
  }
}
