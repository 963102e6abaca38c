(function () {
  "use strict";
  // Review the sample row by row. Row data is untrusted: it is only ever shown with textContent.
  var DATA = JSON.parse(document.getElementById("review-data").textContent);
  var ROWS = DATA.rows, LABELS = DATA.labels, N = ROWS.length;
  var NAME_KEY = "audit-agent.reviewer";
  var $ = function (id) { return document.getElementById(id); };
  var storage = openStorage();
  var state = loadState();
  var reviewer = storage ? (storage.getItem(NAME_KEY) || "") : "";
  var picker = { items: [], index: 0 };

  function openStorage() {
    try {
      var s = window.localStorage, probe = DATA.storage_key + ".probe";
      s.setItem(probe, "1");
      s.removeItem(probe);
      return s;
    } catch (e) {
      return null;
    }
  }

  function loadState() {
    // rows by id in a prototype-free object, so an id such as "__proto__" is just a key
    var fresh = { version: 1, position: 0, rows: Object.create(null) };
    if (!storage) { return fresh; }
    try {
      var saved = JSON.parse(storage.getItem(DATA.storage_key) || "null");
      if (saved && saved.version === 1 && saved.rows && typeof saved.rows === "object") {
        Object.keys(saved.rows).forEach(function (id) { fresh.rows[id] = saved.rows[id]; });
        fresh.position = Math.min(Math.max(0, saved.position | 0), Math.max(0, N - 1));
      }
    } catch (e) { /* a damaged entry: start again */ }
    return fresh;
  }

  function save() {
    if (!storage) { return; }
    try {
      storage.setItem(DATA.storage_key, JSON.stringify(state));
    } catch (e) {
      status("Could not save in this browser (" + e.name + "): export now.");
    }
  }

  function entry(id) {
    return state.rows[id] || { decision: "", new_label: "", hard: false, note: "", reviewer: "", decided_at: "" };
  }

  function update(patch) {
    var row = ROWS[state.position], e = entry(row.id), next = {};
    Object.keys(e).forEach(function (k) { next[k] = e[k]; });
    Object.keys(patch).forEach(function (k) { next[k] = patch[k]; });
    next.reviewer = reviewer;
    next.decided_at = new Date().toISOString();
    state.rows[row.id] = next;
    save();
  }

  function reviewLabel(row, e) {
    if (e.decision === "keep" || e.decision === "hard") { return row.label; }  // hard alone: the label stands, tagged hard
    if (e.decision === "relabel") { return e.new_label; }
    return "";
  }

  // ---- decisions -------------------------------------------------------------------------------
  function keep() { update({ decision: "keep", new_label: "" }); go(state.position + 1); }
  function drop() { update({ decision: "drop", new_label: "", hard: false }); go(state.position + 1); }
  function undo() { update({ decision: "", new_label: "", hard: false }); render(); }

  function relabel(label) {
    var row = ROWS[state.position];
    if (label === row.label) {
      update({ decision: "keep", new_label: "" });
      status("'" + label + "' is the given label: kept");
    } else {
      update({ decision: "relabel", new_label: label });
    }
    go(state.position + 1);
  }

  function toggleHard() {
    var e = entry(ROWS[state.position].id);
    if (e.decision === "keep" || e.decision === "relabel") {
      update({ hard: !e.hard });
    } else if (e.decision === "hard") {
      update({ decision: "", hard: false });
    } else {
      update({ decision: "hard", new_label: "", hard: true });
    }
    render();
  }

  function go(position) {
    state.position = Math.min(Math.max(0, position), N - 1);
    save();
    render();
  }

  function firstUndecided() {
    for (var i = 0; i < N; i++) {
      if (!entry(ROWS[i].id).decision) { go(i); return; }
    }
    status("Every row has a decision.");
  }

  // ---- rendering -------------------------------------------------------------------------------
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function describe(row, e) {
    if (!e.decision) { return "undecided"; }
    var text = e.decision === "relabel" ? "relabel \u2192 " + e.new_label : e.decision;
    return e.hard && e.decision !== "hard" ? text + " \u00b7 hard" : text;
  }

  function counts() {
    var perLabel = Object.create(null), totals = { decided: 0, keep: 0, relabel: 0, drop: 0, hard: 0 };
    ROWS.forEach(function (row) {
      var c = perLabel[row.label] || (perLabel[row.label] = { total: 0, decided: 0, keep: 0, relabel: 0, drop: 0, hard: 0 });
      var e = entry(row.id);
      c.total += 1;
      if (e.decision) { c.decided += 1; totals.decided += 1; }
      if (e.decision && e.decision !== "hard") { c[e.decision] += 1; totals[e.decision] += 1; }
      if (e.hard) { c.hard += 1; totals.hard += 1; }
    });
    return { perLabel: perLabel, totals: totals };
  }

  function renderCounts(c) {
    var t = c.totals;
    $("progress-text").textContent = t.decided + " of " + N + " decided \u00b7 " + t.keep + " keep \u00b7 " +
      t.relabel + " relabel \u00b7 " + t.drop + " drop \u00b7 " + t.hard + " hard";
    $("progress-bar").style.width = (N ? (100 * t.decided / N) : 0) + "%";
    var table = $("label-counts");
    table.textContent = "";
    var head = el("tr");
    [["label", ""], ["done", ""], ["keep", ""], ["rel.", "relabel"], ["drop", ""], ["hard", ""]].forEach(function (h) {
      var th = el("th", "", h[0]);
      if (h[1]) { th.title = h[1]; }
      head.appendChild(th);
    });
    table.appendChild(head);
    Object.keys(c.perLabel).sort().forEach(function (label) {
      var v = c.perLabel[label], tr = el("tr", label === ROWS[state.position].label ? "current" : "");
      tr.appendChild(el("td", "name", label));
      tr.appendChild(el("td", v.decided === v.total ? "full" : "", v.decided + "/" + v.total));
      ["keep", "relabel", "drop", "hard"].forEach(function (k) { tr.appendChild(el("td", "", v[k] ? String(v[k]) : "")); });
      table.appendChild(tr);
    });
  }

  function renderNeighbours(row) {
    var box = $("neighbours");
    box.textContent = "";
    if (!row.neighbours.length) { box.appendChild(el("p", "empty", "no similar rows")); return; }
    row.neighbours.forEach(function (n) {
      var card = el("div", "neighbour" + (n.label !== row.label ? " other-label" : ""));
      var head = el("div", "neighbour-head");
      head.appendChild(el("span", "label", n.label));
      if (n.label !== row.label) { head.appendChild(el("span", "tag", "different label")); }
      head.appendChild(el("span", "meta", n.id + " \u00b7 similarity " + Number(n.similarity).toFixed(2)));
      card.appendChild(head);
      card.appendChild(el("div", "text", n.text));
      box.appendChild(card);
    });
  }

  function renderStrip() {
    var strip = $("strip");
    if (strip.childNodes.length !== N) {
      strip.textContent = "";
      ROWS.forEach(function (row, i) {
        var cell = el("span", "cell");
        cell.title = row.id + " \u00b7 " + row.label;
        cell.addEventListener("click", function () { go(i); });
        strip.appendChild(cell);
      });
    }
    ROWS.forEach(function (row, i) {
      var e = entry(row.id);
      strip.childNodes[i].className = "cell " + (e.decision || "open") + (e.hard ? " is-hard" : "") +
        (i === state.position ? " here" : "");
    });
  }

  function render() {
    $("reviewer-name").textContent = reviewer || "(not set)";
    if (!N) { $("row-text").textContent = "The sample is empty."; return; }
    var row = ROWS[state.position], e = entry(row.id);
    $("position").textContent = "row " + (state.position + 1) + " of " + N;
    $("row-id").textContent = row.id;
    $("row-label").textContent = row.label;
    $("row-decision").textContent = describe(row, e);
    $("row-decision").className = "decision " + (e.decision || "open");
    $("row-text").textContent = row.text;
    $("row-note").hidden = !e.note;
    $("row-note").textContent = e.note ? "Note: " + e.note : "";
    var notes = $("row-notes");
    notes.textContent = "";
    (row.notes.length ? row.notes : ["nothing flagged this row"]).forEach(function (n) {
      notes.appendChild(el("li", row.notes.length ? "" : "empty", n));
    });
    renderNeighbours(row);
    renderCounts(counts());
    renderStrip();
  }

  function status(message) { $("status").textContent = message; }

  // ---- export ----------------------------------------------------------------------------------
  function csvField(value) {
    var s = String(value);
    return /[",\r\n]/.test(s) ? "\"" + s.replace(/"/g, "\"\"") + "\"" : s;
  }

  function exportCsv() {
    if (!reviewer) { askName(exportCsv); return; }
    var lines = [DATA.columns.join(",")], n = 0;
    ROWS.forEach(function (row) {
      var e = entry(row.id);
      if (!e.decision) { return; }
      var record = {
        id: row.id, text: row.text, label: row.label, decision: e.decision, new_label: e.new_label,
        review_label: reviewLabel(row, e), hard: e.hard ? "true" : "false", note: e.note,
        reviewer: e.reviewer || reviewer, decided_at: e.decided_at, audit_id: DATA.meta.audit_id
      };
      lines.push(DATA.columns.map(function (c) { return csvField(record[c] === undefined ? "" : record[c]); }).join(","));
      n += 1;
    });
    var name = "review-" + (reviewer.replace(/[^A-Za-z0-9_-]+/g, "_") || "reviewer") + "-" + DATA.meta.audit_id + ".csv";
    var url = URL.createObjectURL(new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" }));
    var link = el("a");
    link.href = url;
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
    status("Exported " + n + " decided rows to " + name + (N - n ? " (" + (N - n) + " undecided rows left out)" : ""));
  }

  // ---- dialogs ---------------------------------------------------------------------------------
  function openDialog(id, focus) { $(id).hidden = false; $(focus).focus(); }
  function closeDialog(id) { $(id).hidden = true; document.activeElement.blur(); }
  function dialogOpen() { return !$("picker").hidden || !$("note-dialog").hidden || !$("name-dialog").hidden; }

  function askName(then) {
    $("name-input").value = reviewer;
    $("name-dialog").afterName = then || null;
    openDialog("name-dialog", "name-input");
  }

  $("name-input").addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") {
      var name = $("name-input").value.trim();
      if (!name) { return; }
      reviewer = name;
      if (storage) { storage.setItem(NAME_KEY, name); }
      closeDialog("name-dialog");
      render();
      var then = $("name-dialog").afterName;
      if (then) { then(); }
    } else if (ev.key === "Escape" && reviewer) {
      closeDialog("name-dialog");
    }
    ev.stopPropagation();
  });

  function openNote() {
    $("note-input").value = entry(ROWS[state.position].id).note;
    openDialog("note-dialog", "note-input");
  }

  $("note-input").addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      update({ note: $("note-input").value.trim() });
      closeDialog("note-dialog");
      render();
    } else if (ev.key === "Escape") {
      closeDialog("note-dialog");
    }
    ev.stopPropagation();
  });

  function pickerMatches(query) {
    var q = query.trim().toLowerCase();
    if (!q) { return LABELS.slice(); }
    var starts = [], contains = [];
    LABELS.forEach(function (l) {
      var i = l.toLowerCase().indexOf(q);
      if (i === 0) { starts.push(l); } else if (i > 0) { contains.push(l); }
    });
    return starts.concat(contains);
  }

  function renderPicker() {
    var query = $("picker-input").value, list = $("picker-list"), current = ROWS[state.position].label;
    var matches = pickerMatches(query);
    picker.items = matches.map(function (l) { return { label: l, isNew: false }; });
    if (!matches.length && query.trim()) { picker.items = [{ label: query.trim(), isNew: true }]; }
    picker.index = Math.min(picker.index, Math.max(0, picker.items.length - 1));
    list.textContent = "";
    picker.items.forEach(function (item, i) {
      var li = el("li", (i === picker.index ? "active" : "") + (item.isNew ? " new" : ""));
      if (!query && i < 9) { li.appendChild(el("kbd", "", String(i + 1))); }
      li.appendChild(el("span", "", item.isNew ? "new label: " + item.label : item.label));
      if (item.label === current) { li.appendChild(el("span", "tag", "given")); }
      list.appendChild(li);
    });
    var active = list.querySelector("li.active");
    if (active && active.scrollIntoView) { active.scrollIntoView({ block: "nearest" }); }
  }

  function openPicker() {
    $("picker-input").value = "";
    picker.index = 0;
    renderPicker();
    openDialog("picker", "picker-input");
  }

  $("picker-input").addEventListener("input", function () { picker.index = 0; renderPicker(); });
  $("picker-input").addEventListener("keydown", function (ev) {
    var empty = !$("picker-input").value;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      var step = ev.key === "ArrowDown" ? 1 : -1, n = picker.items.length;
      picker.index = n ? (picker.index + step + n) % n : 0;
      renderPicker();
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      var item = picker.items[picker.index];
      if (item) { closeDialog("picker"); relabel(item.label); }
    } else if (ev.key === "Escape") {
      closeDialog("picker");
    } else if (empty && /^[1-9]$/.test(ev.key) && Number(ev.key) <= LABELS.length) {
      ev.preventDefault();
      closeDialog("picker");
      relabel(LABELS[Number(ev.key) - 1]);
    }
    ev.stopPropagation();
  });

  // ---- keys ------------------------------------------------------------------------------------
  var KEYS = {
    "k": keep, "1": keep, "r": openPicker, "2": openPicker, "d": drop, "3": drop, "h": toggleHard, "4": toggleHard,
    "n": openNote, "5": openNote, "u": undo, "g": firstUndecided, "x": exportCsv, "w": function () { askName(null); },
    "ArrowRight": function () { go(state.position + 1); }, "ArrowLeft": function () { go(state.position - 1); },
    "Home": function () { go(0); }, "End": function () { go(N - 1); }
  };

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || dialogOpen() || !N) { return; }
    var action = KEYS[ev.key.length === 1 ? ev.key.toLowerCase() : ev.key];
    if (action) { ev.preventDefault(); action(); }
  });
  // the same page open in another tab saved its decisions: take them, keep this tab's position
  window.addEventListener("storage", function (ev) {
    if (ev.key !== DATA.storage_key) { return; }
    var position = state.position;
    state = loadState();
    state.position = position;
    render();
  });
  $("export-button").addEventListener("click", exportCsv);
  $("reviewer-button").addEventListener("click", function () { askName(null); });

  // no label set (target texts): labels are shown as text blocks and there is no per-label table
  document.body.classList.toggle("free-labels", LABELS.length === 0);
  $("storage-warning").hidden = !!storage;
  render();
  if (!reviewer) { askName(null); }
})();
