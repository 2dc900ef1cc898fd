// @ts-check
/**
 * FrameView front end: Gotalk bytes as a hex + ASCII dump, every field in its own colour.
 *
 * All state comes from the model (see gotalk_lab/widgets/frames.py): `data` (the exact
 * bytes, a DataView), `annotation` (fields, payload previews, the located error), `selected`
 * (field index, -1 for none) and `title`. This file never decodes Gotalk: it only draws
 * the spans the kernel explained. The DOM is built once per change of data or annotation;
 * hovering and selecting only toggle classes on cells already built.
 */

/** @typedef {{index:number, message:(number|null), name:string, start:number, end:number,
 *   raw:string, raw_size:number, value:string, meaning:string, hint:(string|null),
 *   colour:string, cut_short:boolean}} FieldInfo */
/** @typedef {{format:string, hint:string, size:number, text:string, cut:boolean}} PayloadInfo */
/** @typedef {{index:number, kind:string, type:string, badge:string, badge_class:string, start:number, end:number,
 *   summary:string, fields:FieldInfo[], payload:(PayloadInfo|null)}} MessageInfo */
/** @typedef {{offset:number, field:string, expected:string, found:string, message:string,
 *   code:number, at_end:boolean}} ErrorInfo */
/** @typedef {{base:number, size:number, shown:number, expect_version:boolean, field_count:number,
 *   messages:MessageInfo[], unfinished:({start:number,end:number,fields:FieldInfo[]}|null),
 *   error:(ErrorInfo|null), truncated:({shown:number,total:number,hidden_messages:number}|null)}} AnnotationInfo */
/** @typedef {{get(name:string):any, set(name:string, value:any):void, save_changes():void,
 *   on(event:string, callback:Function):void, off(event:string, callback:Function):void}} Model */

/** Bytes per dump row, as in any hex dump; 8 in projector mode, where the text is larger. */
const PER_ROW = 16;
const PROJECTOR_PER_ROW = 8;
/** Width of one hex cell in `ch`; one extra `ch` separates the two halves of a row. */
const HEX_CELL_CH = 3;

/** @param {any} value @returns {Uint8Array} */
export function bytesOf(value) {
  if (value instanceof DataView) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return new Uint8Array(0);
}

/** @param {string} text */
export function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] || c);
}

/** ASCII column: printable ASCII as itself, anything else as a dimmed middle dot. */
function asciiCell(/** @type {number} */ byte) {
  if (byte < 0x20 || byte >= 0x7f) return null;
  return escapeHtml(String.fromCharCode(byte));
}

/** @param {AnnotationInfo} annotation @returns {FieldInfo[]} every field, in `selected` order */
export function allFields(annotation) {
  const fields = [];
  for (const message of annotation.messages || []) fields.push(...message.fields);
  if (annotation.unfinished) fields.push(...annotation.unfinished.fields);
  return fields;
}

/** @param {number} count @param {string} unit */
function plural(count, unit) {
  return `${count.toLocaleString()} ${unit}${count === 1 ? "" : "s"}`;
}

/** The left padding (in ch) that puts a caret under hex column `col`. */
function caretIndent(/** @type {number} */ col, /** @type {number} */ perRow) {
  return col * HEX_CELL_CH + (col >= perRow / 2 ? 1 : 0) + 1;
}

/**
 * One line describing a field: swatch, name, byte range, value and meaning.
 * @param {FieldInfo} field
 */
function fieldLine(field) {
  const size = field.end - field.start;
  return (
    `<span class="gl-fv-swatch" style="background:${escapeHtml(field.colour)}"></span>` +
    `<b>${escapeHtml(field.name)}</b> <span class="gl-fv-range">[${field.start}:${field.end}] ${plural(size, "byte")}</span>` +
    ` = <code>${escapeHtml(field.value)}</code><br><span class="gl-fv-meaning">${escapeHtml(field.meaning)}</span>`
  );
}

/**
 * A message's type badge, coloured by the palette's class for the type (as on the Timeline).
 * @param {MessageInfo} message
 */
export function typeBadge(message) {
  if (!message.badge_class) return "";
  return `<b class="gl-badge ${escapeHtml(message.badge_class)}">${escapeHtml(message.badge)}</b> `;
}

/** @param {{ model: Model, el: HTMLElement }} context */
function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "gl-fv";
  root.innerHTML =
    '<div class="gl-fv-head"><span class="gl-fv-title"></span><span class="gl-fv-stats"></span></div>' +
    '<div class="gl-fv-dump" role="grid"></div>' +
    '<div class="gl-fv-info" aria-live="polite"></div>' +
    '<div class="gl-fv-legend"></div>' +
    '<div class="gl-fv-payload"></div>';
  el.appendChild(root);
  const titleEl = /** @type {HTMLElement} */ (root.querySelector(".gl-fv-title"));
  const statsEl = /** @type {HTMLElement} */ (root.querySelector(".gl-fv-stats"));
  const dumpEl = /** @type {HTMLElement} */ (root.querySelector(".gl-fv-dump"));
  const infoEl = /** @type {HTMLElement} */ (root.querySelector(".gl-fv-info"));
  const legendEl = /** @type {HTMLElement} */ (root.querySelector(".gl-fv-legend"));
  const payloadEl = /** @type {HTMLElement} */ (root.querySelector(".gl-fv-payload"));

  // What the last build made; hover and selection read it and never rebuild.
  /** @type {FieldInfo[]} */ let fields = [];
  /** @type {AnnotationInfo} */ let annotation = /** @type {any} */ ({});
  /** @type {HTMLElement[]} */ let hexCells = [];
  /** @type {HTMLElement[]} */ let ascCells = [];
  /** @type {HTMLElement[]} */ let chips = [];
  /** @type {Int32Array} */ let fieldOfByte = new Int32Array(0);
  let base = 0;
  let hot = -1;
  let selected = -1;

  /** Add or remove `cls` on both cells of every byte of field `index`. */
  function mark(/** @type {number} */ index, /** @type {string} */ cls, /** @type {boolean} */ on) {
    const field = fields[index];
    if (!field) return;
    const stop = Math.min(field.end - base, hexCells.length);
    for (let i = Math.max(field.start - base, 0); i < stop; i++) {
      hexCells[i].classList.toggle(cls, on);
      ascCells[i].classList.toggle(cls, on);
    }
    if (chips[index]) chips[index].classList.toggle(cls, on);
  }

  function showInfo() {
    const field = fields[hot] || fields[selected];
    if (field) {
      infoEl.innerHTML = fieldLine(field);
      infoEl.classList.toggle("gl-fv-info-selected", hot < 0 || hot === selected);
    } else if (fields.length) {
      infoEl.innerHTML =
        '<span class="gl-fv-hint">Each colour is one field. Hover over the bytes or the legend to see what a field means; click to select it.</span>';
      infoEl.classList.remove("gl-fv-info-selected");
    } else {
      infoEl.textContent = "";
    }
    infoEl.hidden = !fields.length;
  }

  function setHot(/** @type {number} */ index) {
    if (index === hot) return;
    if (hot >= 0) mark(hot, "gl-hot", false);
    hot = index;
    if (hot >= 0) mark(hot, "gl-hot", true);
    root.classList.toggle("gl-fv-hovering", hot >= 0);
    showInfo();
  }

  /** Scroll the dump (only the dump, never the notebook) so that `element` is in view. */
  function reveal(/** @type {HTMLElement|undefined} */ element) {
    if (!element) return;
    const top = element.offsetTop; // the dump is the offset parent (position: relative)
    const bottom = top + element.offsetHeight;
    if (top < dumpEl.scrollTop) dumpEl.scrollTop = top - 4;
    else if (bottom > dumpEl.scrollTop + dumpEl.clientHeight) dumpEl.scrollTop = bottom - dumpEl.clientHeight + 4;
  }

  function applySelection() {
    const next = model.get("selected");
    const index = typeof next === "number" && next >= 0 && next < fields.length ? next : -1;
    if (selected >= 0) mark(selected, "gl-sel", false);
    selected = index;
    if (selected >= 0) {
      mark(selected, "gl-sel", true);
      // A selection made elsewhere (the legend, a linked table) brings its bytes into view.
      if (hot !== selected) reveal(hexCells[Math.max(fields[selected].start - base, 0)]);
    }
    showInfo();
    showPayload();
  }

  /** Select field `index`, or clear the selection when it is already selected. */
  function select(/** @type {number} */ index) {
    model.set("selected", index === selected ? -1 : index);
    model.save_changes();
  }

  /** The payload of the selected field's message (or of the first message that has one). */
  function showPayload() {
    const messages = annotation.messages || [];
    const field = fields[selected];
    let message = field && field.message !== null ? messages[field.message] : undefined;
    if (!message && !field) message = messages.find((m) => m.payload && m.payload.format !== "empty");
    if (!message || !message.payload) {
      payloadEl.innerHTML = "";
      payloadEl.hidden = true;
      return;
    }
    const payload = message.payload;
    const described = { json: "JSON, pretty-printed", text: "UTF-8 text", hex: "binary, in hex", empty: "empty" }[payload.format];
    const more = payload.cut ? '<div class="gl-fv-note">… cut here: the payload goes on</div>' : "";
    const body =
      payload.format === "empty"
        ? '<div class="gl-fv-note">no payload bytes</div>'
        : `<pre class="gl-fv-pre gl-fv-${payload.format}">${escapeHtml(payload.text)}</pre>`;
    payloadEl.hidden = false;
    payloadEl.innerHTML =
      `<div class="gl-fv-payload-head">payload of #${message.index} ${escapeHtml(message.kind)}: ` +
      `${plural(payload.size, "byte")}, ${described}</div>${body}${more}`;
  }

  function build() {
    scheduled = false;
    annotation = model.get("annotation") || {};
    const data = bytesOf(model.get("data"));
    fields = allFields(annotation);
    base = annotation.base || 0;
    hot = -1;
    selected = -1;
    root.classList.remove("gl-fv-hovering");
    root.classList.toggle("gl-projector", Boolean(model.get("projector")));
    const perRow = model.get("projector") ? PROJECTOR_PER_ROW : PER_ROW;
    titleEl.textContent = model.get("title") || "";

    // Which field each byte belongs to, and where fields and messages start.
    fieldOfByte = new Int32Array(data.length).fill(-1);
    const fieldStarts = new Uint8Array(data.length);
    const messageStarts = new Uint8Array(data.length);
    for (const field of fields) {
      const stop = Math.min(field.end - base, data.length);
      for (let i = Math.max(field.start - base, 0); i < stop; i++) fieldOfByte[i] = field.index;
      if (field.start - base < data.length && field.start - base >= 0) fieldStarts[field.start - base] = 1;
    }
    for (const message of annotation.messages || []) {
      if (message.start - base < data.length) messageStarts[message.start - base] = 1;
    }
    if (annotation.unfinished && annotation.unfinished.start - base < data.length) {
      messageStarts[annotation.unfinished.start - base] = 1;
    }
    const error = annotation.error;
    const errorAt = error ? error.offset - base : -1;

    // The dump: one string per row, assigned once (fast for a 4 KiB view).
    const rows = [];
    const rowCount = Math.ceil(data.length / perRow);
    const eoiRow = error && error.at_end && !annotation.truncated ? Math.floor(errorAt / perRow) : -1;
    const lastRow = Math.max(rowCount, eoiRow + 1);
    const width = String(base + Math.max(data.length, 1) - 1).length;
    for (let row = 0; row < lastRow; row++) {
      let hex = "";
      let asc = "";
      for (let col = 0; col < perRow; col++) {
        const i = row * perRow + col;
        if (i >= data.length) {
          if (i === errorAt && eoiRow >= 0) {
            hex += `<span class="gl-fv-eoi${col === perRow / 2 ? " gl-mid" : ""}" title="${escapeHtml(error ? error.message : "")}">⟂</span>`;
          }
          break;
        }
        const byte = data[i];
        const fieldIndex = fieldOfByte[i];
        let cls = "gl-b";
        if (col === perRow / 2) cls += " gl-mid";
        if (fieldStarts[i]) cls += " gl-fs";
        if (messageStarts[i]) cls += " gl-ms";
        let style = "";
        if (i === errorAt) cls += " gl-err";
        else if (errorAt >= 0 && i > errorAt) cls += " gl-after";
        else if (fieldIndex < 0) cls += " gl-unread";
        if (fieldIndex >= 0 && i !== errorAt) style = ` style="background:${fields[fieldIndex].colour}"`;
        const char = asciiCell(byte);
        hex += `<span class="${cls}" data-i="${i}"${style}>${byte.toString(16).padStart(2, "0")}</span>`;
        asc += `<span class="${cls}${char === null ? " gl-np" : ""}" data-i="${i}"${style}>${char === null ? "·" : char === " " ? "&nbsp;" : char}</span>`;
      }
      rows.push(
        `<div class="gl-fv-off">${String(base + row * perRow).padStart(width, " ")}</div>` +
          `<div class="gl-fv-hex">${hex}</div><div class="gl-fv-asc">${asc}</div>`
      );
      if (error && row === Math.floor(errorAt / perRow) && (errorAt < data.length || eoiRow >= 0)) {
        // Compiler style: a caret under the bad byte, the message on the line below it.
        rows.push(
          `<div class="gl-fv-errrow"><span class="gl-fv-caret" style="margin-left:${caretIndent(errorAt % perRow, perRow)}ch">▲</span>` +
            `<br>✖ ${escapeHtml(error.message)}</div>`
        );
      }
    }
    const errorHidden = Boolean(error) && errorAt >= data.length && eoiRow < 0;
    if (annotation.truncated) {
      const t = annotation.truncated;
      const hidden = t.hidden_messages ? ` (${plural(t.hidden_messages, "more message")})` : "";
      rows.push(`<div class="gl-fv-more">… ${plural(t.total - t.shown, "more byte")} not shown${hidden}</div>`);
    }
    if (error && errorHidden) {
      // The bad byte lies past the bytes shown: say where and why all the same.
      rows.push(`<div class="gl-fv-errrow gl-fv-errrow-far">✖ ${escapeHtml(error.message)}</div>`);
    }
    const empty = !data.length && !error;
    if (empty) rows.push(`<div class="gl-fv-more">${escapeHtml(model.get("empty_text") || "no bytes")}</div>`);
    dumpEl.innerHTML = rows.join("");
    hexCells = new Array(data.length);
    ascCells = new Array(data.length);
    for (const cell of dumpEl.querySelectorAll(".gl-fv-hex .gl-b")) hexCells[Number(/** @type {HTMLElement} */ (cell).dataset.i)] = /** @type {HTMLElement} */ (cell);
    for (const cell of dumpEl.querySelectorAll(".gl-fv-asc .gl-b")) ascCells[Number(/** @type {HTMLElement} */ (cell).dataset.i)] = /** @type {HTMLElement} */ (cell);

    // Header: title, size, message count, the error if any.
    const count = (annotation.messages || []).length + (annotation.truncated ? annotation.truncated.hidden_messages : 0);
    let stats = `${plural(annotation.size || 0, "byte")} · ${plural(count, "message")}`;
    if (annotation.truncated) stats += ` · first ${plural(annotation.truncated.shown, "byte")} shown`;
    if (error) {
      const where = errorHidden ? " (past the bytes shown)" : "";
      // The click scrolls the dump to the bad byte (or to the error line, when the byte is not shown).
      const tip = errorHidden ? "show the error: the bad byte lies past the bytes shown" : "show the bad byte";
      stats += ` · <span class="gl-fv-bad" title="${tip}">✖ invalid at byte ${error.offset}${where}</span>`;
    }
    statsEl.innerHTML = empty ? "" : stats;

    // Legend: per message, its summary and one chip per field.
    const groups = [];
    for (const message of annotation.messages || []) {
      groups.push(legendGroup(`#${message.index} ${message.kind}`, message.start, message.end, message.summary, message.fields, false, typeBadge(message)));
    }
    if (annotation.unfinished) {
      const u = annotation.unfinished;
      groups.push(legendGroup("not a whole message", u.start, u.end, error ? error.message : "", u.fields, true));
    }
    legendEl.innerHTML = groups.join("");
    legendEl.hidden = groups.length === 0;
    chips = new Array(fields.length);
    for (const chip of legendEl.querySelectorAll(".gl-fv-chip")) chips[Number(/** @type {HTMLElement} */ (chip).dataset.f)] = /** @type {HTMLElement} */ (chip);

    applySelection();
  }

  /**
   * @param {string} label @param {number} start @param {number} end @param {string} summary
   * @param {FieldInfo[]} groupFields @param {boolean} bad @param {string} [badge]
   */
  function legendGroup(label, start, end, summary, groupFields, bad, badge = "") {
    const chipsHtml = groupFields
      .map(
        (f) =>
          `<span class="gl-fv-chip" data-f="${f.index}" role="button" tabindex="0">` +
          `<span class="gl-fv-swatch" style="background:${escapeHtml(f.colour)}"></span>${escapeHtml(f.name)}</span>`
      )
      .join("");
    return (
      `<div class="gl-fv-group${bad ? " gl-fv-group-bad" : ""}"><div class="gl-fv-group-head">` +
      `${badge}<b>${escapeHtml(label)}</b> <span class="gl-fv-range">[${start}:${end}]</span> ` +
      `<span class="gl-fv-summary">${escapeHtml(summary)}</span></div><div class="gl-fv-chips">${chipsHtml}</div></div>`
    );
  }

  // -- events: delegated, so that a rebuild needs no new listeners ---------------

  /** @param {Event} event @returns {number} the field under the pointer, or -1 */
  function fieldAt(event) {
    const target = /** @type {HTMLElement} */ (event.target);
    const chip = target.closest && /** @type {HTMLElement|null} */ (target.closest(".gl-fv-chip"));
    if (chip) return Number(chip.dataset.f);
    const cell = target.closest && /** @type {HTMLElement|null} */ (target.closest(".gl-b"));
    if (cell) return fieldOfByte[Number(cell.dataset.i)] ?? -1;
    return -1;
  }
  const onOver = (/** @type {Event} */ event) => setHot(fieldAt(event));
  const onLeave = () => setHot(-1);
  const onClick = (/** @type {Event} */ event) => {
    const index = fieldAt(event);
    if (index >= 0) select(index);
  };
  const onKey = (/** @type {KeyboardEvent} */ event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    const index = fieldAt(event);
    if (index >= 0) {
      event.preventDefault();
      select(index);
    }
  };
  for (const area of [dumpEl, legendEl]) {
    area.addEventListener("mouseover", onOver);
    area.addEventListener("mouseleave", onLeave);
    area.addEventListener("click", onClick);
  }
  legendEl.addEventListener("keydown", onKey);
  const onStatsClick = (/** @type {Event} */ event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    if (!(target.closest && target.closest(".gl-fv-bad"))) return;
    // The error line first, then the bad byte above it: scrolling up to the line alone
    // would leave the byte it points at out of sight.
    reveal(/** @type {HTMLElement} */ (dumpEl.querySelector(".gl-fv-errrow") || undefined));
    reveal(/** @type {HTMLElement} */ (dumpEl.querySelector(".gl-fv-hex .gl-err, .gl-fv-eoi") || undefined));
  };
  statsEl.addEventListener("click", onStatsClick);

  // `data` and `annotation` arrive in one message and fire two change events: build once.
  let scheduled = false;
  const scheduleBuild = () => {
    if (!scheduled) {
      scheduled = true;
      queueMicrotask(build);
    }
  };
  const onTitle = () => {
    titleEl.textContent = model.get("title") || "";
  };
  model.on("change:data", scheduleBuild);
  model.on("change:annotation", scheduleBuild);
  model.on("change:selected", applySelection);
  model.on("change:title", onTitle);
  model.on("change:projector", scheduleBuild);
  build();

  return () => {
    model.off("change:projector", scheduleBuild);
    model.off("change:data", scheduleBuild);
    model.off("change:annotation", scheduleBuild);
    model.off("change:selected", applySelection);
    model.off("change:title", onTitle);
  };
}

export default { render };
