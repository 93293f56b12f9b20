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

  var nShown = 0; // completion rows the filters leave visible

  // filter applies the filters to every row anew (they changed).
  function filter() {
    nShown = 0;
    for (var i = 0; i < body.rows.length; i += 2) {
      var row = body.rows[i];
      var ok = matches(row.completion);
      row.hidden = !ok;
      if (!ok) body.rows[i + 1].hidden = true;
      if (ok) nShown++;
    }
    shown.textContent = nShown;
  }

  var seen = {}; // event name and id of the completions on the page

  function add(c) {
    // A reconnect replays the kept debug completions: each shows once.
    var key = c.event_name + ' ' + c.event_id;
    if (seen[key]) return;
    seen[key] = 1;
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
    cell(tr, rulesText(c), 'rules');
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
    tr.hidden = !matches(c);
    if (!tr.hidden) nShown++;
    while (body.rows.length > 2 * MAX_ROWS) {
      var oldRow = body.rows[body.rows.length - 2];
      var old = oldRow.completion;
      delete seen[old.event_name + ' ' + old.event_id];
      if (!oldRow.hidden) nShown--;
      body.deleteRow(-1);
      body.deleteRow(-1);
    }
    shown.textContent = nShown;
  }

  // What each rule did with a completion, as delivery outcomes arrive:
  // event id → rule → status (and the destination's trace id).
  var outcomes = {};
  var outcomeCount = 0;

  // A rule's entry says what each side did: the browser's pixel call as
  // the snippet reported it, and the server's delivery once it is known.
  function rulesText(c) {
    var o = outcomes[c.event_id] || {};
    var pixel = {};
    (c.mirror || []).forEach(function (m) {
      var i = m.lastIndexOf('=');
      pixel[m.slice(0, i)] = m.slice(i + 1);
    });
    var names = (c.rules || []).slice();
    Object.keys(o).forEach(function (r) {
      if (names.indexOf(r) < 0) names.push(r);
    });
    return names
      .map(function (r) {
        var sides = [];
        if (pixel[r]) sides.push('pixel ' + pixel[r]);
        if (o[r]) sides.push('server ' + o[r]);
        return sides.length ? r + ': ' + sides.join(' · ') : r;
      })
      .join(', ');
  }

  function outcome(d) {
    if (++outcomeCount > 5000) {
      outcomes = {}; // older outcomes' rows have long left the page
      outcomeCount = 1;
    }
    (outcomes[d.event_id] = outcomes[d.event_id] || {})[d.rule] = d.status + (d.trace_id ? ' (' + d.trace_id + ')' : '');
    for (var i = 0; i < body.rows.length; i += 2) {
      var row = body.rows[i];
      if (row.completion.event_id == d.event_id) row.cells[5].textContent = rulesText(row.completion);
    }
  }

  // The filters live in the address too, so a filtered view can be
  // bookmarked or linked (/console?event=form_submitted&debug=1).
  var params = new URLSearchParams(location.search);
  ['site', 'event', 'who', 'source', 'debug'].forEach(function (k) {
    var el = form.elements[k];
    if (!params.has(k)) return;
    if (el.type == 'checkbox') el.checked = params.get(k) == '1';
    else el.value = params.get(k);
  });

  function remember() {
    var q = new URLSearchParams();
    ['site', 'event', 'who', 'source'].forEach(function (k) {
      if (form.elements[k].value) q.set(k, form.elements[k].value);
    });
    if (form.elements.debug.checked) q.set('debug', '1');
    history.replaceState(null, '', location.pathname + (q.toString() ? '?' + q : ''));
    filter();
  }

  form.addEventListener('input', remember);
  form.addEventListener('change', remember);

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
  stream.addEventListener('delivery', function (e) {
    outcome(JSON.parse(e.data));
  });
  stream.addEventListener('dropped', function (e) {
    status.textContent = 'live (' + e.data + ' completions skipped: this page fell behind)';
  });
})();
