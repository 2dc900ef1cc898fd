// Timeline front-end: a virtualised sequence diagram of a Gotalk trace.
//
// The kernel (gotalk_lab/widgets/timeline.py) sends rows and exchange records;
// this file only draws them. On render a view asks for the whole history
// ({kind: "sync", token}) and gets it in chunks ({kind: "history", token, part,
// parts, seq, ...}); after that it applies {kind: "append", seq, ...} messages,
// each holding only new rows and the exchanges they changed. Appends that arrive
// while the history is still coming are kept and applied afterwards unless the
// history already covers them (seq). Only the rows in sight (plus a margin) are
// in the DOM; drawing happens at most once per animation frame.
//
// Bytes written that are no frame ("unframed", type "?") come as rows too, with an
// index half way between two frames'; they may arrive after the frames that follow
// them, so rows are inserted in order. Clicking a row sets `selected` (an event index,
// or -2 - r for unframed note r); without a frame view of its own elsewhere, the
// kernel then fills `detail_view` and `detail_table` (a FrameView and a FieldTable),
// which this view embeds in a panel under the rows.

/** @typedef {{i:number,t:number,d:"out"|"in",y:string,x:number|null,c:number|null,id:string|null,op:string|null,s:string,n:number,w?:number,r?:number,why?:string}} Row */
/** @typedef {{x:number,c:number,op:string,rq:string,k:string,id:string,a:number,z:number|null,o:string,lat:number|null,r:number,w:number|null}} ExchangeRecord */
/** @typedef {{x:number,c:number,start:number,end:number}} Span  // rows of one exchange in the current view */

/** Order of a row's and an exchange's values on the wire (ROW_FIELDS, EXCHANGE_FIELDS in timeline.py). */
const ROW_FIELDS = ["i", "t", "d", "y", "x", "id", "op", "s", "n", "w"];
/** An unframed row's values (UNFRAMED_ROW_FIELDS): a row's, then its note number and the reason. */
const UNFRAMED_ROW_FIELDS = [...ROW_FIELDS, "r", "why"];
const UNFRAMED = "?";
/** What ipywidgets' widget_serialization writes for a widget in a traitlet. */
const WIDGET_REF = "IPY_MODEL_";
const EXCHANGE_FIELDS = ["x", "c", "op", "rq", "k", "id", "a", "z", "o", "lat", "r", "w"];

/** @param {string[]} fields @param {any[]} values */
function fromWire(fields, values) {
  const object = {};
  for (let k = 0; k < fields.length; k++) object[fields[k]] = values[k];
  return object;
}

const ROW_HEIGHT = 24; // px; fixed, so that row N sits at N * rowHeight
const PROJECTOR_ROW_HEIGHT = 36; // px, with the projector's 18 px text
const OVERSCAN = 10; // rows drawn above and below the visible ones
const COLUMN_WIDTH = 11; // px per exchange column
const MAX_COLUMNS = 14; // columns drawn side by side; later ones share the last
const GUTTER_LEFT = 128; // px: index and time come first
const PROJECTOR_GUTTER_LEFT = 170; // px, as .gl-projector sets --gl-tl-gutter-left in timeline.css
const OPEN_OUTCOMES = new Set(["pending", "retrying", "stream"]);

/** Message types in wire order: glyph, name, shown in the header as filter chips (and legend). */
const TYPES = {
  v: { glyph: "◆", name: "version" },
  r: { glyph: "?", name: "request" },
  s: { glyph: "≡", name: "stream request" },
  p: { glyph: "…", name: "request part" },
  R: { glyph: "✓", name: "result" },
  S: { glyph: "≋", name: "result part" },
  E: { glyph: "✗", name: "error" },
  e: { glyph: "↻", name: "retry" },
  n: { glyph: "✉", name: "notification" },
  h: { glyph: "♥", name: "heartbeat" },
  f: { glyph: "⚠", name: "protocol error" },
  [UNFRAMED]: { glyph: "▒", name: "no frame (raw bytes)" },
};

/** The CSS class of a type: "e" and "E" must differ without relying on case, "?" is no class name. */
function typeClass(/** @type {string} */ y) {
  return y === "e" ? "t-ee" : y === UNFRAMED ? "t-raw" : `t-${y}`;
}

/** What a row's badge says after its glyph: "01" for the version, "raw" for unframed bytes. */
function badgeText(/** @type {string} */ y) {
  return y === "v" ? "01" : y === UNFRAMED ? "raw" : y;
}

/** The value `selected` takes when this row is clicked: its event index, or -2 - r when unframed. */
function rowKey(/** @type {Row} */ row) {
  return row.r == null ? row.i : -2 - row.r;
}

const OUTCOMES = {
  pending: { glyph: "…", words: "waiting" },
  stream: { glyph: "≋", words: "streaming" },
  retrying: { glyph: "↻", words: "retrying" },
  result: { glyph: "✓", words: "result" },
  error: { glyph: "✗", words: "error" },
  closed: { glyph: "⊘", words: "never answered" },
  dropped: { glyph: "⊘", words: "dropped" },
};

/** @param {string} text */
function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

/** @param {number|null} ms */
function formatMs(ms) {
  if (ms == null) return "";
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

class TimelineView {
  /** @param {any} model  @param {HTMLElement} el */
  constructor(model, el) {
    this.model = model;
    this.el = el;
    /** @type {Row[]} every row known, by event index */
    this.rows = [];
    /** @type {Map<number, ExchangeRecord>} */
    this.exchanges = new Map();
    /** @type {Row[]} rows passing the filters and the cursor */
    this.visible = [];
    /** @type {Map<number, Span>} */
    this.spans = new Map();
    /** @type {Span[][]} per column, in order of start (they never overlap within a column) */
    this.columns = [];
    this.operations = new Set();
    /** notification names: chips of their own, apart from the operations */
    this.notifications = new Set();
    this.maxColumn = 0;
    this.follow = true;
    this.frame = 0;
    this.seq = 0;
    this.syncing = true;
    /** @type {any[]} appends received while the history is still coming */
    this.early = [];
    this.incoming = { events: [], exchanges: [] };
    this.token = Math.random().toString(36).slice(2);
    this.hiddenTypes = new Set();
    this.hiddenOperations = new Set();
    this.hiddenNotifications = new Set();
    this.gutter = COLUMN_WIDTH + 12;
    this.rowHeight = model.get("projector") ? PROJECTOR_ROW_HEIGHT : ROW_HEIGHT;
    this.gutterLeft = model.get("projector") ? PROJECTOR_GUTTER_LEFT : GUTTER_LEFT;
    /** @type {number|null} exchange of the selected row: its bar is outlined */
    this.selectedExchange = null;
    this.programmaticScroll = false;
    this.build();
    this.onMessage = (msg) => this.receive(msg);
    this.onFilters = () => { this.rebuildView(); this.drawChips(); this.scheduleDraw(); };
    this.onCursor = () => { this.rebuildView(); this.revealCursor(); this.drawHeader(); this.scheduleDraw(); };
    this.onHeader = () => this.drawHeader();
    this.onSelected = () => { this.reveal(this.model.get("selected")); this.showDetail(); this.scheduleDraw(); };
    this.onDetail = () => { this.embedDetail(); this.showDetail(); };
    /** @type {any[]} the detail panel's embedded child views */
    this.childViews = [];
    this.embedded = "";
    this.destroyed = false;
    this.unframedCount = 0;
    model.on("msg:custom", this.onMessage);
    model.on("change:hidden_types", this.onFilters);
    model.on("change:hidden_operations", this.onFilters);
    model.on("change:hidden_notifications", this.onFilters);
    model.on("change:cursor", this.onCursor);
    model.on("change:selected", this.onSelected);
    model.on("change:detail_view", this.onDetail);
    this.onMarkers = () => this.scheduleDraw();
    model.on("change:markers", this.onMarkers);
    this.onProjector = () => {
      this.rowHeight = this.model.get("projector") ? PROJECTOR_ROW_HEIGHT : ROW_HEIGHT;
      this.gutterLeft = this.model.get("projector") ? PROJECTOR_GUTTER_LEFT : GUTTER_LEFT;
      this.el.classList.toggle("gl-projector", this.model.get("projector"));
      this.rebuildView();
      this.scheduleDraw();
    };
    model.on("change:projector", this.onProjector);
    for (const name of ["frame_count", "held", "paused", "dropped", "bounds", "title", "lanes"]) {
      model.on(`change:${name}`, this.onHeader);
    }
    this.drawHeader();
    this.drawChips();
    this.embedDetail();
    this.showDetail();
    model.send({ kind: "sync", token: this.token });
  }

  build() {
    this.el.classList.add("gl-tl");
    this.el.classList.toggle("gl-projector", this.model.get("projector"));
    this.el.innerHTML = `
      <div class="gl-tl-header">
        <div class="gl-tl-top">
          <span class="gl-tl-title"></span>
          <span class="gl-tl-stats"></span>
          <span class="gl-tl-grow"></span>
          <button class="gl-tl-latest" title="scroll to the newest frame and follow">↓ latest</button>
          <button class="gl-tl-pause"></button>
        </div>
        <div class="gl-tl-chips gl-tl-types"></div>
        <div class="gl-tl-chips gl-tl-ops"></div>
        <div class="gl-tl-chips gl-tl-names"></div>
        <div class="gl-tl-chips gl-tl-legend">
          <span class="gl-tl-what">bars</span>
          <span>one per exchange, from its request to its last answer; bars side by side were in flight at once:</span>
          <span><i class="gl-tl-swatch o-pending gl-tl-open"></i>waiting</span>
          <span><i class="gl-tl-swatch o-result"></i>result</span>
          <span><i class="gl-tl-swatch o-error"></i>error</span>
          <span><i class="gl-tl-swatch o-retrying"></i>told to retry</span>
          <span><i class="gl-tl-swatch o-closed"></i>never answered</span>
        </div>
      </div>
      <div class="gl-tl-heads">
        <span class="gl-tl-h-idx">#</span><span class="gl-tl-h-time">ms</span>
        <span class="gl-tl-h-gutter" title="one bar per exchange: request → last answer">exch.</span>
        <span class="gl-tl-h-left"></span><span class="gl-tl-h-right"></span>
        <span class="gl-tl-h-note">outcome · latency</span>
      </div>
      <div class="gl-tl-scroll">
        <div class="gl-tl-spacer">
          <div class="gl-tl-lane gl-tl-lane-left"></div>
          <div class="gl-tl-lane gl-tl-lane-right"></div>
          <div class="gl-tl-layer"></div>
        </div>
        <div class="gl-tl-empty">waiting for the kernel…</div>
      </div>
      <div class="gl-tl-detail" hidden>
        <div class="gl-tl-detail-head">
          <span class="gl-tl-what">detail</span>
          <span class="gl-tl-detail-note">the clicked arrow, byte by byte: hover a field to see what it means</span>
          <span class="gl-tl-grow"></span>
          <button class="gl-tl-detail-close" title="hide the detail; click any arrow to show it again">✕ close</button>
        </div>
        <div class="gl-tl-detail-body">
          <div class="gl-tl-detail-view"></div>
          <div class="gl-tl-detail-table"></div>
        </div>
      </div>`;
    const $ = (selector) => /** @type {HTMLElement} */ (this.el.querySelector(selector));
    this.scroller = $(".gl-tl-scroll");
    this.spacer = $(".gl-tl-spacer");
    this.layer = $(".gl-tl-layer");
    this.empty = $(".gl-tl-empty");
    this.pauseButton = $(".gl-tl-pause");
    this.latestButton = $(".gl-tl-latest");
    this.detail = $(".gl-tl-detail");
    this.detailSlots = [$(".gl-tl-detail-view"), $(".gl-tl-detail-table")];
    $(".gl-tl-detail-close").addEventListener("click", () => {
      this.model.set("selected", -1);
      this.model.save_changes();
    });
    this.pauseButton.addEventListener("click", () => {
      this.model.set("paused", !this.model.get("paused"));
      this.model.save_changes();
    });
    this.latestButton.addEventListener("click", () => { this.follow = true; this.scheduleDraw(); });
    this.scroller.addEventListener("scroll", () => {
      if (this.programmaticScroll) {
        this.programmaticScroll = false;
      } else {
        const bottom = this.scroller.scrollHeight - this.scroller.clientHeight;
        this.follow = this.scroller.scrollTop >= bottom - this.rowHeight;
      }
      this.scheduleDraw();
    }, { passive: true });
    this.layer.addEventListener("click", (event) => {
      const target = /** @type {HTMLElement} */ (event.target).closest("[data-i]");
      if (!target) return;
      this.model.set("selected", Number(target.getAttribute("data-i")));
      this.model.save_changes();
    });
    $(".gl-tl-types").addEventListener("click", (event) => this.toggle(event, "hidden_types"));
    $(".gl-tl-ops").addEventListener("click", (event) => this.toggle(event, "hidden_operations"));
    $(".gl-tl-names").addEventListener("click", (event) => this.toggle(event, "hidden_notifications"));
  }

  /** A filter chip was clicked: show or hide that type or operation. */
  toggle(event, trait) {
    const chip = /** @type {HTMLElement} */ (event.target).closest("[data-key]");
    if (!chip) return;
    const key = chip.getAttribute("data-key");
    const hidden = new Set(this.model.get(trait));
    hidden.has(key) ? hidden.delete(key) : hidden.add(key);
    this.model.set(trait, [...hidden]);
    this.model.save_changes();
  }

  // -- messages from the kernel ----------------------------------------------------

  receive(msg) {
    if (msg.kind === "history") {
      if (msg.token !== this.token) return; // another view's history
      this.incoming.events.push(...msg.events);
      this.incoming.exchanges.push(...msg.exchanges);
      if (msg.part < msg.parts - 1) return;
      this.exchanges = new Map();
      this.store(this.incoming.exchanges);
      this.unframedCount = 0;
      this.rows = this.incoming.events.map((values) => this.adopt(values));
      for (const row of this.rows) this.noteName(row);
      this.incoming = { events: [], exchanges: [] };
      this.seq = msg.seq;
      this.dropped = msg.dropped;
      this.syncing = false;
      this.empty.style.display = "none";
      for (const early of this.early) if (early.seq > this.seq) this.append(early, false);
      this.early = [];
      this.trim();
      this.rebuildView();
      this.revealCursor();
      if (this.model.get("cursor") < 0) this.reveal(this.model.get("selected"));
      this.drawChips();
      this.drawHeader();
      this.scheduleDraw();
    } else if (msg.kind === "append") {
      if (this.syncing) {
        this.early.push(msg);
      } else if (msg.seq > this.seq) {
        this.lastAppendAt ||= performance.now();
        this.append(msg, true);
        this.scheduleDraw();
      }
    }
  }

  /** A row from the wire, completed from its exchange (column, ID, operation). @returns {Row} */
  adopt(values) {
    const unframed = values.length > ROW_FIELDS.length;
    if (unframed) this.unframedCount++;
    const row = /** @type {Row} */ (fromWire(unframed ? UNFRAMED_ROW_FIELDS : ROW_FIELDS, values));
    row.c = null;
    const record = row.x == null ? undefined : this.exchanges.get(row.x);
    if (record) {
      row.c = record.c;
      row.id = record.id;
      row.op = record.op;
    }
    return row;
  }

  /** @param {any[][]} wireRecords exchanges as EXCHANGE_FIELDS lists */
  store(wireRecords) {
    for (const values of wireRecords) {
      const record = /** @type {ExchangeRecord} */ (fromWire(EXCHANGE_FIELDS, values));
      this.exchanges.set(record.x, record);
      if (record.c > this.maxColumn) this.maxColumn = record.c;
      if (record.op && !this.operations.has(record.op)) this.operations.add(record.op);
    }
  }

  append(msg, incremental) {
    this.seq = msg.seq;
    this.dropped = msg.dropped;
    const knownNames = this.operations.size + this.notifications.size;
    this.store(msg.exchanges);
    let outOfOrder = false;
    for (const values of msg.events) {
      const row = this.adopt(values);
      outOfOrder = !this.insertRow(row) || outOfOrder;
      this.noteName(row);
      if (incremental && !outOfOrder && this.model.get("cursor") < 0 && this.passes(row)) this.addVisible(row);
    }
    if (incremental && (this.trim() || outOfOrder || this.model.get("cursor") >= 0)) this.rebuildView();
    if (incremental && this.operations.size + this.notifications.size !== knownNames) this.drawChips();
    if (incremental) this.drawHeader();
  }

  /**
   * Put a row in its place by index; true when that is the end (the usual case). Unframed
   * bytes are noted when written, and may reach the view after the frames that follow them.
   * @param {Row} row
   */
  insertRow(row) {
    const rows = this.rows;
    if (!rows.length || rows[rows.length - 1].i <= row.i) {
      rows.push(row);
      return true;
    }
    let low = 0;
    let high = rows.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (rows[middle].i <= row.i) low = middle + 1; else high = middle;
    }
    rows.splice(low, 0, row);
    return false;
  }

  /** Keep no more rows than the trace keeps (its cap); returns whether any went. */
  trim() {
    const cap = this.model.get("cap");
    if (!cap || this.rows.length <= cap) return false;
    this.rows.splice(0, this.rows.length - cap);
    const first = this.rows[0].i;
    for (const [id, record] of this.exchanges) {
      if (OPEN_OUTCOMES.has(record.o) || Math.max(record.a, record.z ?? 0) >= first) break;
      this.exchanges.delete(id);
    }
    return true;
  }

  // -- what is in view -------------------------------------------------------------------

  /** The row with event index ``index`` (rows are sorted by index), or undefined. */
  findRow(index) {
    let low = 0;
    let high = this.rows.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const found = this.rows[middle].i;
      if (found === index) return this.rows[middle];
      if (found < index) low = middle + 1; else high = middle - 1;
    }
    return undefined;
  }

  /** @param {Row} row */
  /** A row's operation, or its notification's name, goes to the chips of its kind. @param {Row} row */
  noteName(row) {
    if (row.op) (row.y === "n" ? this.notifications : this.operations).add(row.op);
  }

  passes(row) {
    if (this.hiddenTypes.has(row.y)) return false;
    if (!row.op) return true;
    return !(row.y === "n" ? this.hiddenNotifications : this.hiddenOperations).has(row.op);
  }

  rebuildView() {
    this.hiddenTypes = new Set(this.model.get("hidden_types"));
    this.hiddenOperations = new Set(this.model.get("hidden_operations"));
    this.hiddenNotifications = new Set(this.model.get("hidden_notifications"));
    const cursor = this.model.get("cursor");
    this.visible = [];
    this.spans = new Map();
    this.columns = [];
    for (const row of this.rows) {
      if (cursor >= 0 && row.i > cursor) break;
      if (this.passes(row)) this.addVisible(row);
    }
  }

  /** @param {Row} row */
  addVisible(row) {
    const position = this.visible.length;
    this.visible.push(row);
    if (row.x == null) return;
    let span = this.spans.get(row.x);
    if (span) {
      span.end = position;
    } else {
      span = { x: row.x, c: row.c ?? 0, start: position, end: position };
      this.spans.set(row.x, span);
      (this.columns[span.c] ??= []).push(span);
    }
  }

  /** Whether an exchange still waits at the point shown (live: its outcome; player: the cursor). */
  isOpen(record) {
    const cursor = this.model.get("cursor");
    if (record.z == null) return OPEN_OUTCOMES.has(record.o);
    return cursor >= 0 && record.z > cursor;
  }

  /** The last view row a span's bar reaches: open exchanges run to the bottom. */
  spanEnd(span) {
    const record = this.exchanges.get(span.x);
    return record && this.isOpen(record) ? this.visible.length - 1 : span.end;
  }

  revealCursor() {
    const cursor = this.model.get("cursor");
    if (cursor >= 0) this.reveal(cursor);
  }

  /** Scroll the row of event ``index`` (or the last one before it) into sight, if it is not. */
  reveal(index) {
    if (index < 0 || !this.visible.length) return;
    this.spacer.style.height = `${this.visible.length * this.rowHeight}px`; // or scrollTop is clamped short
    let low = 0;
    let high = this.visible.length - 1;
    while (low < high) {  // the last visible row at or before ``index``
      const middle = (low + high + 1) >> 1;
      if (this.visible[middle].i <= index) low = middle; else high = middle - 1;
    }
    const top = low * this.rowHeight;
    const { scrollTop, clientHeight } = this.scroller;
    this.follow = false; // stay on the row shown, even when frames keep coming
    if (top < scrollTop || top + this.rowHeight > scrollTop + clientHeight) this.scrollTo(top - clientHeight / 2);
  }

  /** Scroll without the scroll handler taking it for the user's own scrolling. */
  scrollTo(top) {
    const bottom = Math.max(0, this.scroller.scrollHeight - this.scroller.clientHeight);
    const target = Math.min(Math.max(0, Math.round(top)), bottom);
    if (Math.abs(this.scroller.scrollTop - target) < 1) return; // no scroll event would come
    this.programmaticScroll = true;
    this.scroller.scrollTop = target;
  }

  // -- drawing ------------------------------------------------------------------------------

  scheduleDraw() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  draw() {
    const started = performance.now();
    const total = this.visible.length;
    const columns = Math.max(1, Math.min(this.maxColumn + 1, MAX_COLUMNS));
    this.gutter = columns * COLUMN_WIDTH + 12;
    this.el.style.setProperty("--gl-tl-gutter", `${this.gutter}px`);
    this.spacer.style.height = `${total * this.rowHeight}px`;
    const selectedRow = this.findRow(this.model.get("selected"));
    this.selectedExchange = selectedRow ? selectedRow.x : null;
    const live = this.model.get("cursor") < 0;
    if (this.follow && live) this.scrollTo(this.scroller.scrollHeight);
    this.latestButton.style.visibility = !this.follow && live ? "visible" : "hidden";
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 400;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - OVERSCAN);
    const last = Math.min(total - 1, Math.ceil((top + height) / this.rowHeight) + OVERSCAN);
    const html = [];
    for (let c = 0; c < this.columns.length; c++) this.drawBars(html, this.columns[c], first, last);
    for (let position = first; position <= last; position++) html.push(this.rowHtml(this.visible[position], position));
    this.layer.innerHTML = html.join("");
    const finished = performance.now();
    const stats = this.el.dataset;
    stats.rows = String(this.rows.length);
    stats.visible = String(total);
    stats.rendered = String(last - first + 1 > 0 ? last - first + 1 : 0);
    stats.drawMs = (finished - started).toFixed(2);
    stats.drawnAt = finished.toFixed(1);
    if (this.lastAppendAt) {  // the first draw after new frames arrived: how long they waited
      stats.appendToDrawMs = (finished - this.lastAppendAt).toFixed(1);
      this.lastAppendAt = 0;
    }
  }

  /** Bars of one column that cross rows first..last: binary search, then walk. */
  drawBars(html, spans, first, last) {
    if (!spans || !spans.length) return;
    let low = 0;
    let high = spans.length;
    while (low < high) {  // the first span ending at or after ``first`` (ends grow with starts)
      const middle = (low + high) >> 1;
      if (this.spanEnd(spans[middle]) < first) low = middle + 1; else high = middle;
    }
    for (let index = low; index < spans.length && spans[index].start <= last; index++) {
      const span = spans[index];
      const record = this.exchanges.get(span.x);
      if (!record) continue;
      const open = this.isOpen(record);
      const end = open ? this.visible.length - 1 : span.end;
      const column = Math.min(span.c, MAX_COLUMNS - 1);
      const outcome = open ? (record.o === "retrying" ? "retrying" : "pending") : record.o;
      const left = this.gutterLeft + column * COLUMN_WIDTH + 2;
      const topPx = span.start * this.rowHeight + this.rowHeight / 2 - 4;
      const heightPx = (end - span.start) * this.rowHeight + 8;
      const selected = this.selectedExchange === record.x ? " gl-tl-bar-sel" : "";
      html.push(
        `<div class="gl-tl-bar o-${outcome}${open ? " gl-tl-open" : ""}${selected}" style="left:${left}px;top:${topPx}px;height:${heightPx}px"` +
          ` title="${escapeHtml(this.exchangeTitle(record, open))}"></div>`,
      );
    }
  }

  exchangeTitle(record, open) {
    const outcome = OUTCOMES[open ? "pending" : record.o] ?? { words: record.o };
    const lanes = this.model.get("lanes");
    const who = `${record.rq === "out" ? lanes[0] : lanes[1]} asked`;
    const latency = !open && record.lat != null ? `, ${formatMs(record.lat)}` : "";
    const retries = record.r ? `, ${record.r} retr${record.r === 1 ? "y" : "ies"}` : "";
    return `exchange ${record.id} ${record.op} (${record.k}, ${who}): ${outcome.words}${latency}${retries} — column ${record.c}`;
  }

  /** @param {Row} row @param {number} position */
  rowHtml(row, position) {
    const type = TYPES[row.y] ?? { glyph: "·", name: row.y };
    const record = row.x == null ? undefined : this.exchanges.get(row.x);
    const cursor = this.model.get("cursor");
    let classes = `gl-tl-row ${typeClass(row.y)} d-${row.d}`;
    if (rowKey(row) === this.model.get("selected")) classes += " gl-tl-sel";
    if (row.i === cursor) classes += " gl-tl-cur";
    let tick = "";
    if (record) {
      const column = Math.min(record.c, MAX_COLUMNS - 1);
      const x = this.gutterLeft + column * COLUMN_WIDTH + 6;
      const laneLeft = this.gutterLeft + this.gutter + 8; // as --gl-tl-lane-left in timeline.css
      tick = `<span class="gl-tl-tick" style="left:${x}px;width:${laneLeft - x}px"></span>`;
    }
    const badge = `<b class="gl-tl-badge">${type.glyph} ${badgeText(row.y)}</b>`;
    const marker = row.r == null ? (this.model.get("markers") || {})[String(row.i)] : undefined;
    const expert = marker
      ? `<span class="gl-tl-finding gl-tl-finding-${escapeHtml(marker.severity)}" title="${escapeHtml(marker.text.join("\n"))}">${escapeHtml(marker.symbol)}</span>`
      : "";
    const words = this.label(row);
    const title = this.rowTitle(row, type, record);
    return (
      `<div class="${classes}" data-i="${rowKey(row)}" style="top:${position * this.rowHeight}px" title="${escapeHtml(title)}">` +
      `<span class="gl-tl-idx">${expert}${row.r == null ? row.i : "·"}</span><span class="gl-tl-time">${(row.t * 1000).toFixed(3)}</span>${tick}` +
      `<span class="gl-tl-arrow"><span class="gl-tl-label">${badge} ${escapeHtml(words)}</span></span>` +
      `<span class="gl-tl-note">${this.noteHtml(row, record)}</span></div>`
    );
  }

  /** The words after the badge: request ID, operation (on requests) or notification name, detail. */
  label(row) {
    if (row.y === UNFRAMED) return `${row.n} byte${row.n === 1 ? "" : "s"} ${row.s}`;
    const parts = [];
    if (row.id != null) parts.push(row.id);
    if (row.op && (row.y === "r" || row.y === "s" || row.y === "n")) parts.push(row.op);
    if (row.s) parts.push(row.s);
    return parts.join(" ");
  }

  rowTitle(row, type, record) {
    const lanes = this.model.get("lanes");
    const way = row.d === "out" ? `${lanes[0]} → ${lanes[1]}` : `${lanes[1]} → ${lanes[0]}`;
    if (row.y === UNFRAMED) {
      return [
        `${row.n} byte${row.n === 1 ? "" : "s"} written after #${Math.floor(row.i)} at ${(row.t * 1000).toFixed(3)} ms, ${way}`,
        `no frame: ${row.why}`,
        this.model.get("click_hint_unframed"),
      ].filter(Boolean).join("\n");
    }
    const lines = [`#${row.i} at ${(row.t * 1000).toFixed(3)} ms, ${way}`, `${row.y} ${type.name}: ${this.label(row)}`];
    if (row.n) lines.push(`payload ${row.n} byte${row.n === 1 ? "" : "s"}`);
    if (record) lines.push(this.exchangeTitle(record, this.isOpen(record)));
    const hint = this.model.get("click_hint");
    if (hint) lines.push(hint);
    return lines.join("\n");
  }

  noteHtml(row, record) {
    if (row.y === UNFRAMED) {
      const unfinished = (row.why || "").startsWith("an unfinished");
      return unfinished
        ? `<span class="o-retrying">⋯ unfinished: reader waits</span>`
        : `<span class="o-error">⚠ no frame: not a message</span>`;
    }
    if (row.y === "e") return `<span class="o-retrying">↻ ${record ? escapeHtml(record.op) + " " : ""}wait ${row.w} ms</span>`;
    if (row.y === "n") return `<span class="gl-tl-quiet">one-way, never answered</span>`;
    if (row.y === "h") return `<span class="gl-tl-quiet">never answered</span>`;
    if (row.y === "f") return `<span class="o-error">⚠ sender closes</span>`;
    if (!record) return row.y === "v" ? `<span class="gl-tl-quiet">handshake</span>` : "";
    if ((row.y === "r" || row.y === "s") && row.i !== record.a) return `<span class="o-retrying">↻ sent again</span>`;
    const open = this.isOpen(record);
    if (!open && record.z === row.i) {
      const outcome = OUTCOMES[record.o] ?? { glyph: "", words: record.o };
      const retries = record.r ? ` · ${record.r} retr${record.r === 1 ? "y" : "ies"}` : "";
      return `<span class="o-${record.o}">${outcome.glyph} ${escapeHtml(record.op)} ${formatMs(record.lat)}</span>` +
        `<span class="gl-tl-quiet">${retries}</span>`;
    }
    const span = this.spans.get(record.x);
    if (!open && record.z == null && span && this.visible[span.end] === row) {
      return `<span class="o-closed">⊘ ${escapeHtml(record.op)} never answered</span>`;
    }
    return "";
  }

  drawHeader() {
    const model = this.model;
    const lanes = model.get("lanes");
    /** @type {HTMLElement} */ (this.el.querySelector(".gl-tl-title")).textContent = model.get("title") || "Gotalk timeline";
    /** @type {HTMLElement} */ (this.el.querySelector(".gl-tl-h-left")).textContent = `▍${lanes[0]}`;
    /** @type {HTMLElement} */ (this.el.querySelector(".gl-tl-h-right")).textContent = `${lanes[1]}▐`;
    const parts = [`${model.get("frame_count")} frames`, `${this.exchanges.size} exchanges`];
    if (this.unframedCount) parts.push(`<span class="gl-tl-warn">${this.unframedCount} unframed</span>`);
    const dropped = model.get("dropped");
    if (dropped) parts.push(`<span class="gl-tl-warn">${dropped} dropped: ${escapeHtml(model.get("bounds") || "")}</span>`);
    if (model.get("paused")) parts.push(`<span class="gl-tl-warn">paused: ${model.get("held")} held</span>`);
    /** @type {HTMLElement} */ (this.el.querySelector(".gl-tl-stats")).innerHTML = parts.join(" · ");
    this.pauseButton.textContent = model.get("paused") ? "▶ resume" : "‖ pause";
    // A player's timeline shows a finished recording: nothing to pause.
    this.pauseButton.style.display = model.get("cursor") >= 0 && !model.get("paused") ? "none" : "";
    this.pauseButton.classList.toggle("gl-tl-on", model.get("paused"));
  }

  drawChips() {
    const hiddenTypes = new Set(this.model.get("hidden_types"));
    const types = Object.entries(TYPES).map(([key, type]) =>
      `<button class="gl-tl-chip ${typeClass(key)}${hiddenTypes.has(key) ? " gl-tl-off" : ""}" data-key="${key}" ` +
      `title="${hiddenTypes.has(key) ? "show" : "hide"} ${escapeHtml(type.name)} frames"><b class="gl-tl-badge">${type.glyph} ${badgeText(key)}</b> ${type.name}</button>`);
    /** @type {HTMLElement} */ (this.el.querySelector(".gl-tl-types")).innerHTML = `<span class="gl-tl-what">types</span>${types.join("")}`;
    const hiddenOperations = new Set(this.model.get("hidden_operations"));
    const operations = [...this.operations].sort().map((name) =>
      `<button class="gl-tl-chip gl-tl-op${hiddenOperations.has(name) ? " gl-tl-off" : ""}" data-key="${escapeHtml(name)}" ` +
      `title="${hiddenOperations.has(name) ? "show" : "hide"} ${escapeHtml(name)}">${escapeHtml(name)}</button>`);
    /** @type {HTMLElement} */ (this.el.querySelector(".gl-tl-ops")).innerHTML = operations.length
      ? `<span class="gl-tl-what">operations</span>${operations.join("")}` : "";
    const hiddenNames = new Set(this.model.get("hidden_notifications"));
    const names = [...this.notifications].sort().map((name) =>
      `<button class="gl-tl-chip gl-tl-op${hiddenNames.has(name) ? " gl-tl-off" : ""}" data-key="${escapeHtml(name)}" ` +
      `title="${hiddenNames.has(name) ? "show" : "hide"} notifications named ${escapeHtml(name)}">${escapeHtml(name)}</button>`);
    /** @type {HTMLElement} */ (this.el.querySelector(".gl-tl-names")).innerHTML = names.length
      ? `<span class="gl-tl-what">notifications</span>${names.join("")}` : "";
  }

  // -- the detail panel -------------------------------------------------------------------

  /** Embed the kernel's FrameView and FieldTable (once they exist) in the panel's two slots. */
  async embedDetail() {
    const refs = [this.model.get("detail_view"), this.model.get("detail_table")];
    const manager = this.model.widget_manager;
    if (!manager || !refs.every((ref) => typeof ref === "string" && ref.startsWith(WIDGET_REF))) return;
    const key = refs.join(" ");
    if (this.embedded === key) return;
    this.embedded = key;
    this.removeChildViews();
    const views = await Promise.all(refs.map(async (ref) => {
      const child = await manager.get_model(ref.slice(WIDGET_REF.length));
      return manager.create_view(child);
    }));
    if (this.destroyed || this.embedded !== key) {  // gone, or replaced, while they were made
      for (const view of views) view.remove();
      return;
    }
    this.childViews = views;
    views.forEach((view, k) => this.detailSlots[k].replaceChildren(view.el));
    this.showDetail();
  }

  /** The panel is shown while something is selected and the kernel has filled it. */
  showDetail() {
    this.detail.hidden = !(this.childViews.length && this.model.get("selected") !== -1);
  }

  removeChildViews() {
    for (const view of this.childViews) view.remove();
    this.childViews = [];
  }

  destroy() {
    this.destroyed = true;
    this.removeChildViews();
    this.model.off("change:detail_view", this.onDetail);
    if (this.frame) cancelAnimationFrame(this.frame);
    this.model.off("msg:custom", this.onMessage);
    this.model.off("change:hidden_types", this.onFilters);
    this.model.off("change:hidden_operations", this.onFilters);
    this.model.off("change:hidden_notifications", this.onFilters);
    this.model.off("change:projector", this.onProjector);
    this.model.off("change:cursor", this.onCursor);
    this.model.off("change:selected", this.onSelected);
    this.model.off("change:markers", this.onMarkers);
    for (const name of ["frame_count", "held", "paused", "dropped", "bounds", "title", "lanes"]) {
      this.model.off(`change:${name}`, this.onHeader);
    }
  }
}

/** anywidget entry point: one TimelineView per displayed output. */
function render({ model, el }) {
  const view = new TimelineView(model, el);
  return () => view.destroy();
}

export default { render };
