// The carbonflow live view. No data is in the page: every call sends the API key as
// "Authorization: Bearer". The key lives only in this script's memory (no storage, no cookie):
// a reload asks for it again. The live stream is read with fetch (EventSource cannot send that
// header). See docs/live-view.md.
(function () {
  "use strict";

  let apiKey = null; // memory only: never written to any storage
  const LANG_STORE = "carbonflow.lang";
  // The Sankey shows the links that carry attributed energy and carbon (docs/api.md, Flows).
  const SANKEY_KINDS = new Set(["supply", "emission", "energy", "allocation"]);
  // Electricity entering the site's network: imports and own generation (not storage, not
  // feeders behind them, which measure the same power again).
  const SUPPLY_ROLES = new Set([
    "grid_import", "green_import", "generation_pv", "generation_wind", "generation_gas",
  ]);
  const RENEWABLE_ROLES = new Set(["green_import", "generation_pv", "generation_wind"]);
  const UNITS = { energy_tce: "tce", tco2e_location: "tCO2e", tco2e_market: "tCO2e" };
  const REFRESH_MS = 60000; // flows and KPIs: calculated results change every few minutes
  const ALARMS_MS = 15000; // alarms: the notify service evaluates every 30 s by default

  const state = {
    // zh-CN by default; the header's button switches (kept for the tab).
    lang: sessionStorage.getItem(LANG_STORE) || "zh",
    siteId: null,
    site: null,
    sites: [],
    orgs: new Map(), // org_id → {name, name_zh}: organisation names for the KPI table
    devices: new Map(), // device_id → {name, name_zh}: device names for stale lists and alarms
    period: "today", // today | 24h | month: the Sankey's period (docs/live-view.md)
    flowsAsked: 0, // the newest flows request: an older answer arriving later is dropped
    measure: "energy_tce",
    flows: null,
    summary: null,
    snapshot: null,
    stream: null,
    refreshTimer: null,
    alarms: null, // unresolved alarms of the site; null: this key may not read alarms
    alarmTimer: null,
  };

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------------------------------
  // Labels
  // ------------------------------------------------------------------------------------------

  function label(key, fallback) {
    const entry = window.CF_LABELS[key];
    if (entry && entry[state.lang]) return entry[state.lang];
    return fallback !== undefined ? fallback : key;
  }

  function applyLabels() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-label]").forEach((el) => {
      el.textContent = label(el.dataset.label, el.textContent);
    });
    $("lang-toggle").textContent = state.lang === "zh" ? "EN" : "中文";
    document.title = label("title");
  }

  function roleLabel(carrier, role) {
    const entry = window.CF_LABELS[`${role}@${carrier}`];
    return entry ? entry[state.lang] : label(role);
  }

  // A device by its name in this language, else by its id (a meter's tag) shown as code: the
  // registry holds no Chinese device names yet.
  function deviceNode(deviceId) {
    const device = state.devices.get(deviceId);
    const name = device && (state.lang === "zh" ? device.name_zh : device.name);
    if (name) return document.createTextNode(name);
    const code = document.createElement("code");
    code.textContent = deviceId;
    return code;
  }

  // An alarm's message in this language, its device named as above.
  function alarmMessage(a) {
    const text = state.lang === "zh" ? a.message_zh : a.message_en;
    const parts = text.split(a.subject);
    const nodes = [document.createTextNode(parts[0])];
    for (const part of parts.slice(1)) nodes.push(deviceNode(a.subject), document.createTextNode(part));
    return nodes;
  }

  function orgLabel(orgId) {
    const org = state.orgs.get(orgId);
    if (org && state.lang === "zh" && org.name_zh) return org.name_zh;
    return org && org.name ? org.name : label(orgId, orgId);
  }

  function nodeLabel(node) {
    if (!node) return "";
    if (node.node_id === "outside:in") return label("outside_in");
    if (node.node_id === "outside:out") return label("outside_out");
    if (state.lang === "zh" && node.name_zh) return node.name_zh;
    if (node.name) return node.name;
    const entry = window.CF_LABELS[node.node_id];
    if (entry) return entry[state.lang];
    const [prefix, rest] = node.node_id.split(/:(.*)/s);
    if (prefix === "unallocated") return `${label("unallocated")} · ${orgLabel(rest)}`;
    return rest !== undefined ? `${label(prefix + ":" + rest, rest)}` : node.node_id;
  }

  // ------------------------------------------------------------------------------------------
  // Numbers
  // ------------------------------------------------------------------------------------------

  function fmt(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return Number(value).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", {
      maximumFractionDigits: digits,
      minimumFractionDigits: digits,
    });
  }

  function fmtAuto(value) {
    const a = Math.abs(value);
    return fmt(value, a >= 1000 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3);
  }

  function localDateTime(iso) {
    if (!iso) return "";
    const tz = state.site ? state.site.timezone : undefined;
    return new Date(iso).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", {
      timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
      minute: "2-digit",
    });
  }

  function localTime(iso) {
    if (!iso) return "";
    const tz = state.site ? state.site.timezone : undefined;
    return new Date(iso).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", {
      timeZone: tz, hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
  }

  // ------------------------------------------------------------------------------------------
  // The API
  // ------------------------------------------------------------------------------------------

  class KeyRefused extends Error {}

  function headers() {
    return { Authorization: `Bearer ${apiKey || ""}` };
  }

  async function api(path) {
    const response = await fetch(path, { headers: headers(), cache: "no-store" });
    if (response.status === 401) throw new KeyRefused(path);
    if (!response.ok) {
      let detail = `${response.status}`;
      try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(detail);
    }
    return response.json();
  }

  function showMessage(text) {
    const el = $("message");
    el.textContent = text || "";
    el.hidden = !text;
  }

  function askForKey(error) {
    const dialog = $("key-dialog");
    $("key-error").hidden = !error;
    $("key-error").textContent = error ? label("key_refused") : "";
    $("key-input").value = "";
    if (!dialog.open) dialog.showModal();
    $("key-input").focus();
  }

  function handleError(err) {
    if (err instanceof KeyRefused) {
      apiKey = null;
      stopStream();
      askForKey(true);
      return;
    }
    showMessage(String(err.message || err));
  }

  // ------------------------------------------------------------------------------------------
  // The live stream (server-sent events over fetch)
  // ------------------------------------------------------------------------------------------

  function setStreamState(name) {
    const el = $("stream-state");
    el.dataset.state = name;
    el.dataset.label = `state_${name}`;
    el.textContent = label(`state_${name}`);
  }

  function parseEvent(block) {
    const event = { event: "message", data: "", id: null, retry: null };
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "event") event.event = value;
      else if (field === "id") event.id = value;
      else if (field === "retry") event.retry = parseInt(value, 10);
    }
    event.data = data.join("\n");
    return event;
  }

  function stopStream() {
    if (state.stream) state.stream.abort();
    state.stream = null;
  }

  async function runStream(siteId) {
    stopStream();
    const controller = new AbortController();
    state.stream = controller;
    let retryMs = 5000;
    while (!controller.signal.aborted) {
      setStreamState("connecting");
      try {
        const response = await fetch(`/api/v1/sites/${encodeURIComponent(siteId)}/live/stream`, {
          headers: { ...headers(), Accept: "text/event-stream" },
          signal: controller.signal,
          cache: "no-store",
        });
        if (response.status === 401) throw new KeyRefused("stream");
        if (!response.ok || !response.body) throw new Error(`live stream: ${response.status}`);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const event = parseEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (event.retry) retryMs = event.retry;
            if (event.event === "snapshot") {
              setStreamState("live");
              onSnapshot(JSON.parse(event.data));
            } else if (event.event === "error") {
              showMessage(JSON.parse(event.data).detail || "live stream error");
            }
          }
        }
      } catch (err) {
        if (controller.signal.aborted) return;
        if (err instanceof KeyRefused) { handleError(err); return; }
        showMessage(String(err.message || err));
      }
      if (controller.signal.aborted) return;
      setStreamState("retry");
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }

  // ------------------------------------------------------------------------------------------
  // Rendering: live tiles, power table, KPIs
  // ------------------------------------------------------------------------------------------

  function ageText(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const s = Math.max(0, Math.round(seconds));
    if (s < 120) return `${s} ${label("unit_s")}`;
    if (s < 7200) return `${Math.round(s / 60)} ${label("unit_min")}`;
    return `${fmt(s / 3600, 1)} ${label("unit_h")}`;
  }

  function setPeriods(kind, text) {
    document.querySelectorAll(`[data-period-of="${kind}"]`).forEach((el) => {
      el.textContent = text;
    });
  }

  // The site's data state, visible from across the room: a banner and a coloured frame.
  function renderState(snapshot) {
    const st = snapshot.state;
    document.body.dataset.liveState = st;
    const banner = $("stale-banner");
    if (st === "stale" || st === "no_data") {
      banner.hidden = false;
      banner.textContent = st === "no_data" ? label("no_data")
        : `${label("stale_banner")} ${localTime(snapshot.data_as_of)} `
          + `(${ageText(snapshot.data_age_s)} ${label("ago")})`;
    } else {
      banner.hidden = true;
      banner.textContent = "";
    }
    const dataAsOf = snapshot.data_as_of
      ? `${label("as_of")} ${localTime(snapshot.data_as_of)} · ${ageText(snapshot.data_age_s)} ${label("ago")}`
      : label("no_data");
    $("as-of").textContent = dataAsOf;
    $("as-of").dataset.asOf = snapshot.data_as_of || "";
    $("as-of").dataset.snapshotAt = snapshot.as_of;
    $("as-of").dataset.state = st;
    setPeriods("power", `${label("period_now")} · ${dataAsOf}`);
  }

  function onSnapshot(snapshot) {
    state.snapshot = snapshot;
    showMessage("");
    const e = snapshot.electricity;
    const total = $("power-total");
    total.textContent = fmt(e.power_in_kw / 1000, 2);
    total.dataset.powerKw = String(e.power_in_kw);
    $("power-renewable").textContent = fmt(e.renewable_kw / 1000, 2);
    $("power-renewable").dataset.powerKw = String(e.renewable_kw);
    $("power-renewable-pct").textContent = e.renewable_share_pct === null ? "–"
      : fmt(e.renewable_share_pct, 1);
    $("power-export").textContent = fmt(e.net_export_kw / 1000, 2);
    $("power-export").dataset.exportKw = String(e.net_export_kw);
    const stale = snapshot.devices.filter((d) => d.stale && d.newest_ts);
    const reporting = snapshot.devices.filter((d) => !d.stale).length;
    $("fresh-count").textContent = `${reporting} / ${snapshot.devices.length}`;
    const staleLine = $("stale-devices");
    staleLine.replaceChildren();
    if (stale.length) {
      staleLine.append(`${label("stale_devices")}: `);
      stale.slice(0, 4).forEach((d, i) => {
        staleLine.append(i ? ", " : "", deviceNode(d.device_id), ` (${ageText(d.age_s)})`);
      });
      if (stale.length > 4) staleLine.append(` +${stale.length - 4}`);
    }
    renderState(snapshot);
    renderMethane(snapshot.methane);
    const body = $("power-table").querySelector("tbody");
    body.replaceChildren(...snapshot.power.map((g) => {
      const tr = document.createElement("tr");
      tr.dataset.carrier = g.carrier;
      tr.dataset.role = g.role;
      tr.dataset.powerKw = String(g.power_kw);
      for (const [text, cls] of [
        [label(g.carrier), ""], [roleLabel(g.carrier, g.role), ""], [fmt(g.power_kw, 0), "num"],
        [`${g.devices_reporting} / ${g.devices}`, "num"],
      ]) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      return tr;
    }));
  }

  const METHANE_STREAMS = ["drained", "utilised", "flared", "vented"];

  function targetText(targets) {
    if (!targets || !targets.length) return `(${label("no_target")})`;
    return `(${label("target")} ${targets.map((t) => `${t.comparator === "<=" ? "≤" : "≥"} `
      + `${fmt(t.threshold_pct, 0)} %${t.year ? ` ${t.year}` : ""}`).join(" · ")})`;
  }

  // The mine panel: drained, utilised, flared, vented [Nm³/h, tCO2e/h], CH4 %, the rates.
  function renderMethane(m) {
    const panel = $("mine-panel");
    panel.hidden = !m;
    if (!m) return;
    const h = m.hour;
    $("methane-age").textContent = m.data_as_of
      ? `${label("period_now")} · ${label("as_of")} ${localTime(m.data_as_of)} · `
        + `${ageText(m.data_age_s)} ${label("ago")}` : label("no_data");
    $("methane-table").querySelector("tbody").replaceChildren(...METHANE_STREAMS.map((k) => {
      const tr = document.createElement("tr");
      tr.dataset.stream = k;
      tr.dataset.nm3H = h ? String(h[`${k}_ch4_nm3_h`]) : "";
      tr.dataset.tco2eH = h ? String(h[`${k}_tco2e_h`]) : "";
      for (const [text, cls] of [
        [label(`methane_${k}`), ""],
        [h ? fmt(h[`${k}_ch4_nm3_h`], 0) : "–", "num"],
        [h ? fmtAuto(h[`${k}_tco2e_h`]) : "–", "num"],
      ]) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      return tr;
    }));
    $("methane-ch4-pct").textContent = h && h.drained_ch4_pct !== null ? fmt(h.drained_ch4_pct, 1) : "–";
    $("methane-drainage").textContent = m.drainage_rate === null ? "–" : fmt(100 * m.drainage_rate, 1);
    $("methane-utilisation").textContent = m.utilisation_rate === null ? "–"
      : fmt(100 * m.utilisation_rate, 1);
    $("methane-drainage-target").textContent = targetText(m.drainage_targets);
    $("methane-utilisation-target").textContent = targetText(m.utilisation_targets);
  }

  // A KPI value in its unit: fractions are shown as percent.
  // A coverage share [fraction] as a percentage; a little data is "< 0.1 %", not "0.0 %".
  function coverageText(share) {
    if (share === null || share === undefined) return "–";
    // No-break spaces: a wrapped detail never leaves "%" alone on a line.
    if (share > 0 && share < 0.001) return "<\u00a00.1\u00a0%";
    return `${fmt(100 * share, 1)}\u00a0%`;
  }

  function kpiValue(value, unit) {
    if (value === null || value === undefined) return "–";
    if (unit === "fraction") return `${fmt(100 * value, 1)} %`;
    return `${fmtAuto(value)} ${label(`unit:${unit}`, unit || "")}`;
  }

  function renderSummary() {
    const s = state.summary;
    if (!s) return;
    const r = s.recent;
    $("emission-rate").textContent = r.emission_rate_location_tco2e_h === null
      ? "–" : fmtAuto(r.emission_rate_location_tco2e_h);
    $("emission-rate-market").textContent = r.emission_rate_market_tco2e_h === null
      ? "–" : fmtAuto(r.emission_rate_market_tco2e_h);
    $("zero-share").textContent = r.zero_carbon_share_pct === null
      ? "–" : fmt(r.zero_carbon_share_pct, 1);
    $("export-offset").textContent = fmtAuto(r.net_export_tco2e_location);
    $("recent-energy").textContent = fmtAuto(r.energy_tce);
    setPeriods("carbon", r.slots
      ? `${label("recent_window")} ${localTime(r.window_start)}–${localTime(r.window_end)}`
      : label("nothing_calculated"));
    const body = $("kpi-table").querySelector("tbody");
    body.replaceChildren(...s.kpis.map((k) => {
      const tr = document.createElement("tr");
      tr.dataset.indicator = k.indicator;
      tr.dataset.status = k.status;
      const target = k.target_threshold === null ? "–"
        : `${k.target_comparator === "le" ? "≤" : k.target_comparator === "ge" ? "≥" : ""} `
          + kpiValue(k.target_threshold, k.target_unit);
      const cells = [
        [`${label(k.indicator)}${k.org_id ? ` · ${orgLabel(k.org_id)}` : ""}`
          + ` · ${label(`grain_${k.grain}`)}`, ""],
        [kpiValue(k.value, k.unit), "num"],
        [target, "num"],
      ];
      for (const [text, cls] of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      // The status on one line, how sure it is (coverage, days with data) below it: the
      // detail wraps, so the status column never pushes the side panel off the screen.
      const status = document.createElement("td");
      status.className = `status status-${k.status}`;
      const word = document.createElement("span");
      word.className = "status-word";
      word.textContent = label(k.status);
      const detail = document.createElement("span");
      detail.className = "status-detail";
      detail.textContent = `${label("coverage")}\u00a0${coverageText(k.completeness)}`
        + (k.days_with_data === null || k.days_with_data === undefined ? ""
          : ` · ${label("days_with_data")}\u00a0${k.days_with_data}`);
      status.append(word, detail);
      tr.appendChild(status);
      // Why the status is insufficient_data, in the page's language.
      const reason = state.lang === "en" ? k.reason_en : k.reason_zh;
      if (reason) tr.lastChild.title = reason;
      return tr;
    }));
    $("kpi-empty").hidden = s.kpis.length > 0;
  }

  // ------------------------------------------------------------------------------------------
  // Alarms: unresolved ones, acknowledged from here (operators and admins)
  // ------------------------------------------------------------------------------------------

  function alarmsPath(suffix) {
    return `/api/v1/sites/${encodeURIComponent(state.siteId)}/alarms${suffix}`;
  }

  async function loadAlarms() {
    if (!state.siteId) return;
    try {
      const response = await fetch(alarmsPath("?state=open&state=acknowledged&limit=100"), {
        headers: headers(), cache: "no-store",
      });
      if (response.status === 401) throw new KeyRefused("alarms");
      // An enterprise key reads no alarms (they are the site's): no panel.
      state.alarms = response.ok ? (await response.json()).items : null;
      renderAlarms();
    } catch (err) { handleError(err); }
  }

  async function acknowledgeAlarm(alarmId) {
    try {
      const response = await fetch(alarmsPath(`/${alarmId}/acknowledge`), {
        method: "POST", headers: headers(), cache: "no-store",
      });
      if (response.status === 401) throw new KeyRefused("acknowledge");
      if (!response.ok) {
        showMessage(`${label("ack_refused")} (${response.status})`);
        return;
      }
      await loadAlarms();
    } catch (err) { handleError(err); }
  }

  function renderAlarms() {
    const panel = $("alarms-panel");
    panel.hidden = state.alarms === null;
    if (state.alarms === null) return;
    const alarms = state.alarms;
    $("alarm-count").textContent = alarms.length ? `(${alarms.length})` : "";
    $("alarms-empty").hidden = alarms.length > 0;
    document.body.dataset.alarms = String(alarms.filter((a) => a.state === "open").length);
    $("alarm-table").querySelector("tbody").replaceChildren(...alarms.map((a) => {
      const tr = document.createElement("tr");
      Object.assign(tr.dataset, { alarmId: String(a.alarm_id), severity: a.severity, state: a.state });
      tr.className = `alarm severity-${a.severity}`;
      for (const content of [
        [label(`severity_${a.severity}`)],
        alarmMessage(a),
        [localDateTime(a.opened_at)],
        [label(`alarm_${a.state}`)],
      ]) {
        const td = document.createElement("td");
        td.append(...content);
        tr.appendChild(td);
      }
      if (a.acknowledged_by) { // who: a key id, shown as an identifier
        const who = document.createElement("code");
        who.textContent = a.acknowledged_by;
        tr.lastChild.append(" ", who);
      }
      const cell = document.createElement("td");
      if (a.state === "open") {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "ack";
        button.textContent = label("acknowledge");
        button.addEventListener("click", () => acknowledgeAlarm(a.alarm_id));
        cell.appendChild(button);
      }
      tr.appendChild(cell);
      return tr;
    }));
  }

  // ------------------------------------------------------------------------------------------
  // The Sankey
  // ------------------------------------------------------------------------------------------

  function sankeyLinks(flows, measure) {
    return flows.links
      .filter((l) => SANKEY_KINDS.has(l.kind) && l.attributed[measure] > 0)
      .map((l) => ({ source: l.source, target: l.target, kind: l.kind, carrier: l.carrier,
        value: l.attributed[measure], quantity: l.quantity, quantity_unit: l.quantity_unit }));
  }

  function renderSankey() {
    const flows = state.flows;
    const container = $("sankey");
    const table = $("sankey-links").querySelector("tbody");
    container.replaceChildren();
    table.replaceChildren();
    if (!flows) return;
    const measure = state.measure;
    const unit = UNITS[measure];
    const links = sankeyLinks(flows, measure);
    $("sankey-total").textContent = fmtAuto(flows.totals[measure]);
    $("sankey-total").dataset.value = String(flows.totals[measure]);
    $("sankey-unit").textContent = unit;
    $("sankey-period").textContent = `${localDateTime(flows.start)} – ${localDateTime(flows.end)}`;
    container.dataset.period = flows.period || "";
    container.dataset.measure = measure;
    container.dataset.start = flows.start;
    container.dataset.end = flows.end;
    container.dataset.computedAt = flows.computed_at;
    for (const l of links) {
      const tr = document.createElement("tr");
      Object.assign(tr.dataset, { source: l.source, target: l.target, kind: l.kind,
        value: String(l.value), unit });
      for (const text of [l.source, l.target, l.kind, String(l.value), unit]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      table.appendChild(tr);
    }
    $("sankey-empty").hidden = links.length > 0;
    container.dataset.links = String(links.length);
    if (!links.length) { container.dataset.state = "empty"; return; }

    const byId = new Map(flows.nodes.map((n) => [n.node_id, n]));
    const used = [...new Set(links.flatMap((l) => [l.source, l.target]))];
    const width = Math.max(container.clientWidth, 320);
    // Node labels never overlap: the padding between nodes is at least one label line, and
    // the height at least what the fullest column needs with that padding.
    const fontPx = parseFloat(getComputedStyle(container).fontSize) || 14;
    const line = Math.ceil(fontPx * 1.25);
    const layout = (height) => d3.sankey()
      .nodeId((d) => d.id)
      .nodeAlign(d3.sankeyJustify)
      .nodeWidth(14)
      .nodePadding(line + 2)
      .extent([[1, 8], [width - 1, height - 8]])({
        nodes: used.map((id) => ({ id, info: byId.get(id) || { node_id: id } })),
        links: links.map((l) => ({ ...l })),
      });
    let height = sankeyHeight(container, used.length, line);
    let graph = layout(height);
    const perColumn = d3.rollup(graph.nodes, (v) => v.length, (d) => d.layer);
    const needed = 16 + Math.max(...perColumn.values()) * (line + 4);
    if (height < needed) {
      height = needed;
      graph = layout(height);
    }
    const color = d3.scaleOrdinal(d3.schemeTableau10);
    const svg = d3.select(container).append("svg")
      .attr("viewBox", `0 0 ${width} ${height}`)
      .attr("width", width).attr("height", height)
      .attr("role", "img")
      .attr("aria-label", label("flows"));
    svg.append("g").attr("class", "links")
      .selectAll("path").data(graph.links).join("path")
      .attr("class", (d) => `link link-${d.kind}`)
      .attr("d", d3.sankeyLinkHorizontal())
      .attr("stroke", (d) => color(d.carrier || d.source.id))
      .attr("stroke-width", (d) => Math.max(1, d.width))
      .attr("data-source", (d) => d.source.id)
      .attr("data-target", (d) => d.target.id)
      .attr("data-value", (d) => String(d.value))
      .append("title")
      .text((d) => `${nodeLabel(d.source.info)} → ${nodeLabel(d.target.info)}\n`
        + `${fmtAuto(d.value)} ${unit}`
        + (d.quantity !== null && d.quantity_unit ? ` · ${fmtAuto(d.quantity)} ${d.quantity_unit}` : ""));
    const node = svg.append("g").attr("class", "nodes")
      .selectAll("g").data(graph.nodes).join("g")
      .attr("data-node", (d) => d.id);
    node.append("rect")
      .attr("x", (d) => d.x0).attr("y", (d) => d.y0)
      .attr("height", (d) => Math.max(1, d.y1 - d.y0)).attr("width", (d) => d.x1 - d.x0)
      .attr("fill", (d) => color(d.id.split(":")[0]));
    node.append("title").text((d) => `${nodeLabel(d.info)} ${fmtAuto(d.value)} ${unit}`);
    node.append("text")
      .attr("x", (d) => (d.x0 < width / 2 ? d.x1 + 6 : d.x0 - 6))
      .attr("y", (d) => (d.y1 + d.y0) / 2)
      .attr("dy", "0.35em")
      .attr("text-anchor", (d) => (d.x0 < width / 2 ? "start" : "end"))
      .text((d) => `${nodeLabel(d.info)} ${fmtAuto(d.value)}`);
    fitLabels(svg, graph, width, height, line);
    container.dataset.state = "drawn";
    container.dataset.height = String(height);
    container.dataset.width = String(width);
    container.dataset.fontPx = String(fontPx);
  }

  // The Sankey's height: on a wall screen the rest of the viewport (it sits above the fold),
  // elsewhere by the number of nodes.
  function sankeyHeight(container, nodes, line) {
    if (window.matchMedia("(min-width: 1600px)").matches) {
      const top = container.getBoundingClientRect().top + window.scrollY;
      return Math.max(320, Math.floor(window.innerHeight - top - 2 * line));
    }
    return Math.max(320, Math.min(900, (line + 12) * nodes));
  }

  // Labels stay in their half of the gap between two node columns (shortened with "…" when
  // too wide) and are pushed apart where two would still touch; one that cannot fit is hidden
  // (its node keeps the name as a tooltip). Checked by the end-to-end test.
  function fitLabels(svg, graph, width, height, line) {
    const columns = [...new Set(graph.nodes.map((d) => d.x0))].sort((a, b) => a - b);
    const gap = columns.length > 1 ? columns[1] - columns[0] - 14 : width - 14;
    const texts = svg.selectAll("g.nodes text").nodes();
    for (const el of texts) {
      const d = d3.select(el).datum();
      const rightward = d.x0 < width / 2;
      const column = columns.indexOf(d.x0);
      const shared = rightward ? column + 1 < columns.length && columns[column + 1] >= width / 2
        : column - 1 >= 0 && columns[column - 1] < width / 2;
      const edge = rightward ? column === columns.length - 1 : column === 0;
      const room = (edge ? 160 : shared ? gap / 2 : gap) - 10;
      truncate(el, Math.max(24, room));
    }
    // Whatever the columns: a label that still touches one placed before moves down below
    // it (a few times at most) or, when it cannot, is hidden.
    const meets = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width
      && a.y < b.y + b.height && b.y < a.y + a.height;
    const placed = [];
    for (const el of texts.sort((a, b) => a.getBBox().y - b.getBBox().y)) {
      let box = el.getBBox();
      for (let tries = 0; tries < 6; tries += 1) {
        const hit = placed.find((b) => meets(b, box));
        if (!hit) break;
        el.setAttribute("y", String(Number(el.getAttribute("y")) + hit.y + hit.height + 1 - box.y));
        box = el.getBBox();
      }
      if (placed.some((b) => meets(b, box)) || box.y < 0 || box.y + box.height > height) {
        el.setAttribute("visibility", "hidden");
      } else {
        placed.push(box);
      }
    }
  }

  function truncate(el, room) {
    const full = el.textContent;
    if (el.getComputedTextLength() <= room) return;
    let lo = 0;
    let hi = full.length;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      el.textContent = `${full.slice(0, mid)}…`;
      if (el.getComputedTextLength() <= room) lo = mid; else hi = mid - 1;
    }
    el.textContent = `${full.slice(0, lo)}…`;
  }

  function renderFactors() {
    const list = $("factor-list");
    list.replaceChildren(...(state.flows ? state.flows.factors : []).map((f) => {
      const li = document.createElement("li");
      li.append(`${label(f.carrier)} · ${label(f.category)} (${label(`basis_${f.basis}`)}): `
        + `${f.factor_value === null ? "" : fmtAuto(f.factor_value)} ${f.factor_unit || ""} `);
      // The factor's key and version: provenance identifiers, shown as code.
      const code = document.createElement("code");
      code.textContent = `${f.factor_key}${f.factor_version ? ` @ ${f.factor_version}` : ""}`;
      li.appendChild(code);
      return li;
    }));
  }

  // ------------------------------------------------------------------------------------------
  // Loading
  // ------------------------------------------------------------------------------------------

  async function loadFlows() {
    if (!state.siteId) return;
    const site = encodeURIComponent(state.siteId);
    const asked = ++state.flowsAsked;
    try {
      const flows = await api(`/api/v1/sites/${site}/flows?period=${state.period}`);
      // A period switch or a site switch while this was on its way: a newer request counts.
      if (asked !== state.flowsAsked) return;
      state.flows = flows;
      renderSankey();
      renderFactors();
    } catch (err) { handleError(err); }
  }

  async function loadOrgs() {
    if (!state.siteId) return;
    try {
      const page = await api(`/api/v1/sites/${encodeURIComponent(state.siteId)}/organisations?limit=1000`);
      state.orgs = new Map(page.items.map((o) => [o.org_id, o]));
      renderSummary();
    } catch (err) { handleError(err); }
  }

  async function loadDevices() {
    if (!state.siteId) return;
    try {
      const page = await api(`/api/v1/sites/${encodeURIComponent(state.siteId)}/devices?limit=1000`);
      state.devices = new Map(page.items.map((d) => [d.device_id, d]));
      if (state.snapshot) onSnapshot(state.snapshot);
      renderAlarms();
    } catch (err) { handleError(err); }
  }

  async function loadSummary() {
    if (!state.siteId) return;
    try {
      state.summary = await api(`/api/v1/sites/${encodeURIComponent(state.siteId)}/view/summary`);
      renderSummary();
    } catch (err) { handleError(err); }
  }

  function refresh() {
    loadFlows();
    loadSummary();
  }

  async function loadSites() {
    const page = await api("/api/v1/sites?limit=1000");
    state.sites = page.items;
    const picker = $("site-picker");
    picker.replaceChildren(...state.sites.map((s) => {
      const option = document.createElement("option");
      option.value = s.site_id;
      option.textContent = state.lang === "zh" && s.name_zh ? s.name_zh : s.name;
      return option;
    }));
  }

  function siteFromPath() {
    const match = window.location.pathname.match(/^\/view\/sites\/([^/]+)\/?$/);
    return match ? decodeURIComponent(match[1]) : null;
  }

  async function start() {
    if (!apiKey) { askForKey(false); return; }
    try {
      await loadSites();
    } catch (err) { handleError(err); return; }
    if (!state.sites.length) { showMessage(label("no_sites")); return; }
    const wanted = siteFromPath();
    const site = state.sites.find((s) => s.site_id === wanted) || state.sites[0];
    if (site.site_id !== wanted) {
      window.history.replaceState(null, "", `/view/sites/${encodeURIComponent(site.site_id)}`);
    }
    selectSite(site);
  }

  function selectSite(site) {
    state.site = site;
    state.siteId = site.site_id;
    $("site-picker").value = site.site_id;
    $("site-name").textContent = state.lang === "zh" && site.name_zh ? site.name_zh : site.name;
    document.body.dataset.site = site.site_id;
    state.flows = null;
    state.summary = null;
    renderSankey();
    refresh();
    loadOrgs();
    loadDevices();
    state.alarms = null;
    loadAlarms();
    clearInterval(state.alarmTimer);
    state.alarmTimer = setInterval(loadAlarms, ALARMS_MS);
    clearInterval(state.refreshTimer);
    state.refreshTimer = setInterval(refresh, REFRESH_MS);
    runStream(site.site_id);
  }

  // ------------------------------------------------------------------------------------------
  // Controls
  // ------------------------------------------------------------------------------------------

  function press(selector, chosen) {
    document.querySelectorAll(selector).forEach((b) => {
      b.setAttribute("aria-pressed", String(b === chosen));
    });
  }

  function wire() {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      if (!key) return;
      apiKey = key;
      $("key-dialog").close();
      start();
    });
    $("key-change").addEventListener("click", () => askForKey(false));
    $("lang-toggle").addEventListener("click", () => {
      state.lang = state.lang === "zh" ? "en" : "zh";
      sessionStorage.setItem(LANG_STORE, state.lang);
      applyLabels();
      for (const option of $("site-picker").options) {
        const site = state.sites.find((x) => x.site_id === option.value);
        if (site) option.textContent = state.lang === "zh" && site.name_zh ? site.name_zh : site.name;
      }
      if (state.site) {
        $("site-name").textContent = state.lang === "zh" && state.site.name_zh
          ? state.site.name_zh : state.site.name;
      }
      if (state.snapshot) onSnapshot(state.snapshot);
      renderSummary();
      renderAlarms();
      renderSankey();
      renderFactors();
    });
    $("site-picker").addEventListener("change", (event) => {
      const site = state.sites.find((s) => s.site_id === event.target.value);
      if (!site) return;
      window.history.pushState(null, "", `/view/sites/${encodeURIComponent(site.site_id)}`);
      selectSite(site);
    });
    document.querySelectorAll("button.period").forEach((b) => b.addEventListener("click", () => {
      state.period = b.dataset.period;
      press("button.period", b);
      loadFlows();
    }));
    document.querySelectorAll("button.measure").forEach((b) => b.addEventListener("click", () => {
      state.measure = b.dataset.measure;
      press("button.measure", b);
      renderSankey();
    }));
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      $("sankey").dataset.state = "resizing"; // drawn again below, at the new width
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(renderSankey, 200);
    });
  }

  applyLabels();
  wire();
  start();
})();
