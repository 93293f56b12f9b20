// The console's little script: expandable rows on every page, and on the
// live page the server-sent event stream with its filters. No framework:
// the pages are rendered by tally; this only adds rows and hides them.
(function () {
  'use strict';

  // A row with the class expand shows or hides the detail row after it.
  document.addEventListener('click', function (e) {
    var row = e.target.closest && e.target.closest('tr.expand');
    if (!row) return;
    var next = row.nextElementSibling;
    if (next && next.classList.contains('detail')) next.hidden = !next.hidden;
  });

  // Payloads and answers are JSON: shown indented when they parse.
  document.querySelectorAll('pre.json').forEach(function (pre) {
    try {
      pre.textContent = JSON.stringify(JSON.parse(pre.textContent), null, 2);
    } catch (err) {}
  });

  var table = document.getElementById('live');
  if (!table) return;
  var body = table.tBodies[0];
  var form = document.getElementById('filters');
  var status = document.getElementById('status');
  var count = document.getElementById('count');
  var shown = document.getElementById('shown');
  var MAX_ROWS = 500; // completions kept on the page; older ones are removed
  var received = 0;

  function cell(tr, text, cls) {
    var td = tr.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function matches(c) {
    var f = form.elements;
    var who = f.who.value.trim().toLowerCase();
    return (
      (!f.site.value.trim() || c.site == f.site.value.trim()) &&
      (!f.event.value || c.event_name == f.event.value) &&
      (!f.source.value || c.source == f.source.value) &&
      (!f.debug.checked || c.debug) &&
      (!who || (c.visitor_id + ' ' + c.email + ' ' + c.object_id).toLowerCase().indexOf(who) >= 0)
    );
  }

  function filter() {
    var n = 0;
    for (var i = 0; i < body.rows.length; i += 2) {
      var row = body.rows[i];
      var ok = matches(row.completion);
      row.hidden = !ok;
      if (!ok) body.rows[i + 1].hidden = true;
      if (ok) n++;
    }
    shown.textContent = n;
  }

  function add(c) {
    received++;
    count.textContent = received;
    var tr = document.createElement('tr');
    tr.className = 'expand completion' + (c.debug ? ' debug' : '');
    tr.completion = c;
    tr.dataset.eventId = c.event_id;
    cell(tr, c.received_at.replace('T', ' ').slice(0, 23));
    cell(tr, c.site);
    var ev = cell(tr, c.event_name);
    if (c.debug) {
      var b = document.createElement('span');
      b.className = 'badge debug';
      b.textContent = 'debug';
      ev.append(' ', b);
    }
    cell(tr, c.source);
    cell(tr, [c.email, c.visitor_id || c.object_id].filter(Boolean).join(' · '));
    cell(tr, (c.rules || []).join(', '), 'rules');
    var detail = document.createElement('tr');
    detail.className = 'detail';
    detail.hidden = true;
    var td = detail.insertCell();
    td.colSpan = 6;
    var pre = document.createElement('pre');
    pre.textContent = JSON.stringify(c, null, 2);
    td.append(pre);
    body.insertBefore(detail, body.firstChild);
    body.insertBefore(tr, detail);
    while (body.rows.length > 2 * MAX_ROWS) {
      body.deleteRow(-1);
      body.deleteRow(-1);
    }
    tr.hidden = !matches(c);
    filter();
  }

  form.addEventListener('input', filter);
  form.addEventListener('change', filter);

  var stream = new EventSource('/console/stream');
  stream.onopen = function () {
    status.textContent = 'live';
    status.className = 'ok';
  };
  stream.onerror = function () {
    status.textContent = 'reconnecting…';
    status.className = '';
  };
  stream.addEventListener('completion', function (e) {
    add(JSON.parse(e.data));
  });
  stream.addEventListener('dropped', function (e) {
    status.textContent = 'live (' + e.data + ' completions skipped: this page fell behind)';
  });
})();
