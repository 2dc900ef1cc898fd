// @ts-check
/**
 * FieldTable front end: the fields of an annotation as rows (offset, bytes, field, value,
 * meaning), grouped by message, the located error last.
 *
 * Model (see gotalk_lab/widgets/frames.py): `annotation` (the same dict FrameView gets),
 * `selected` (field index, -1 for none) and `title`. Clicking a row sets `selected`; a
 * FrameView linked with ipywidgets.jslink follows in the browser, without the kernel.
 * Rows are built once per annotation; a selection change only moves one class.
 */

/** @typedef {import("./frames.js").FieldInfo} FieldInfo */
/** @typedef {import("./frames.js").AnnotationInfo} AnnotationInfo */
/** @typedef {import("./frames.js").Model} Model */

/** @param {string} text */
function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] || c);
}

/**
 * A message's type badge, coloured by the palette's class for the type (as on the Timeline and
 * in the FrameView's legend). @param {import("./frames.js").MessageInfo} message
 */
function typeBadge(message) {
  if (!message.badge_class) return "";
  return `<b class="gl-badge ${escapeHtml(message.badge_class)}">${escapeHtml(message.badge)}</b> `;
}

/** The field's first bytes as spaced hex, "…" when there are more. @param {FieldInfo} field */
function hexOf(field) {
  const pairs = field.raw.match(/../g) || [];
  const shown = pairs.join(" ");
  if (!field.raw_size) return '<span class="gl-ft-dim">(none)</span>';
  return escapeHtml(shown) + (field.raw_size > pairs.length ? ` <span class="gl-ft-dim">… ${field.raw_size} bytes</span>` : "");
}

/** @param {FieldInfo} field */
function fieldRow(field) {
  const size = field.end - field.start;
  return (
    `<tr class="gl-ft-row${field.cut_short ? " gl-ft-cut" : ""}" data-f="${field.index}" tabindex="0">` +
    `<td class="gl-ft-off">[${field.start}:${field.end}]</td>` +
    `<td class="gl-ft-bytes" title="${size} byte${size === 1 ? "" : "s"}">${hexOf(field)}</td>` +
    `<td class="gl-ft-name"><span class="gl-ft-tag" style="background:${escapeHtml(field.colour)}">${escapeHtml(field.name)}</span></td>` +
    `<td class="gl-ft-value">${escapeHtml(field.value)}</td>` +
    `<td class="gl-ft-meaning">${escapeHtml(field.meaning)}</td></tr>`
  );
}

/** @param {{ model: Model, el: HTMLElement }} context */
function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "gl-ft";
  root.innerHTML =
    '<div class="gl-ft-title"></div><div class="gl-ft-scroll"><table class="gl-ft-table">' +
    "<thead><tr><th>offset</th><th>bytes</th><th>field</th><th>value</th><th>meaning</th></tr></thead>" +
    "<tbody></tbody></table></div>";
  el.appendChild(root);
  const titleEl = /** @type {HTMLElement} */ (root.querySelector(".gl-ft-title"));
  const scrollEl = /** @type {HTMLElement} */ (root.querySelector(".gl-ft-scroll"));
  const body = /** @type {HTMLElement} */ (root.querySelector("tbody"));

  /** @type {HTMLElement[]} */ let rows = [];
  let selected = -1;

  function build() {
    /** @type {AnnotationInfo} */
    const annotation = model.get("annotation") || {};
    titleEl.textContent = model.get("title") || "";
    titleEl.hidden = !titleEl.textContent;
    const html = [];
    for (const message of annotation.messages || []) {
      html.push(
        `<tr class="gl-ft-group"><td colspan="5">${typeBadge(message)}<b>#${message.index} ${escapeHtml(message.kind)}</b> ` +
          `<span class="gl-ft-dim">[${message.start}:${message.end}]</span> ${escapeHtml(message.summary)}</td></tr>`
      );
      for (const field of message.fields) html.push(fieldRow(field));
    }
    const error = annotation.error;
    if (annotation.unfinished) {
      const u = annotation.unfinished;
      html.push(
        `<tr class="gl-ft-group gl-ft-bad"><td colspan="5"><b>not a whole message</b> ` +
          `<span class="gl-ft-dim">[${u.start}:${u.end}]</span></td></tr>`
      );
      for (const field of u.fields) html.push(fieldRow(field));
    }
    if (error) {
      html.push(
        `<tr class="gl-ft-error"><td class="gl-ft-off">${error.offset}</td>` +
          `<td colspan="4">✖ ${escapeHtml(error.message)}</td></tr>`
      );
    }
    if (annotation.truncated) {
      const t = annotation.truncated;
      html.push(
        `<tr class="gl-ft-more"><td colspan="5">… ${t.total - t.shown} more bytes` +
          (t.hidden_messages ? ` and ${t.hidden_messages} more messages` : "") +
          " not listed</td></tr>"
      );
    }
    if (!html.length) html.push(`<tr class="gl-ft-more"><td colspan="5">${escapeHtml(model.get("empty_text") || "no fields")}</td></tr>`);
    body.innerHTML = html.join("");
    rows = [];
    for (const row of body.querySelectorAll(".gl-ft-row")) {
      rows[Number(/** @type {HTMLElement} */ (row).dataset.f)] = /** @type {HTMLElement} */ (row);
    }
    selected = -1;
    applySelection();
  }

  function applySelection() {
    const next = model.get("selected");
    if (rows[selected]) rows[selected].classList.remove("gl-ft-selected");
    selected = typeof next === "number" && rows[next] ? next : -1;
    const row = rows[selected];
    if (!row) return;
    row.classList.add("gl-ft-selected");
    // Scroll only the table's own box, never the notebook around it.
    const top = row.offsetTop;
    const bottom = top + row.offsetHeight;
    const header = /** @type {HTMLElement} */ (root.querySelector("thead")).offsetHeight;
    if (top - header < scrollEl.scrollTop) scrollEl.scrollTop = top - header;
    else if (bottom > scrollEl.scrollTop + scrollEl.clientHeight) scrollEl.scrollTop = bottom - scrollEl.clientHeight;
  }

  /** @param {Event} event */
  function rowOf(event) {
    const target = /** @type {HTMLElement} */ (event.target);
    const row = target.closest && /** @type {HTMLElement|null} */ (target.closest(".gl-ft-row"));
    return row ? Number(row.dataset.f) : -1;
  }
  /** @param {number} index */
  function select(index) {
    model.set("selected", index === selected ? -1 : index);
    model.save_changes();
  }
  const onClick = (/** @type {Event} */ event) => {
    const index = rowOf(event);
    if (index >= 0) select(index);
  };
  const onKey = (/** @type {KeyboardEvent} */ event) => {
    const index = rowOf(event);
    if (index < 0) return;
    if (event.key === "Enter" || event.key === " ") select(index);
    else if (event.key === "ArrowDown" && rows[index + 1]) rows[index + 1].focus();
    else if (event.key === "ArrowUp" && rows[index - 1]) rows[index - 1].focus();
    else return;
    event.preventDefault();
  };
  body.addEventListener("click", onClick);
  body.addEventListener("keydown", onKey);

  const onTitle = () => {
    titleEl.textContent = model.get("title") || "";
    titleEl.hidden = !titleEl.textContent;
  };
  const onProjector = () => root.classList.toggle("gl-projector", Boolean(model.get("projector")));
  model.on("change:annotation", build);
  model.on("change:selected", applySelection);
  model.on("change:title", onTitle);
  model.on("change:projector", onProjector);
  onProjector();
  build();

  return () => {
    model.off("change:projector", onProjector);
    model.off("change:annotation", build);
    model.off("change:selected", applySelection);
    model.off("change:title", onTitle);
  };
}

export default { render };
