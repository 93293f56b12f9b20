// Pixel mirroring: for a completion that a rule with mirror_in_browser
// matches, call the page's Meta pixel with exactly the event name, event id,
// value and currency that the server forwards, so Meta deduplicates the
// pair. The matching and value mapping are the rules engine's (rules/match.go,
// rules/mapping.go), reimplemented here; rules/testdata/conformance.json is
// run against both, in Go and in Chromium, so they cannot drift apart.
//
// rules: the site's mirror rules as baked into the script (rules.BrowserRule:
//   {r: rule, e: [events], w: [filter], a: [[filter]], n: Meta name,
//    c: custom (trackCustom), v: {f: fixed} | {p: property, d: default},
//    $: currency, g: consent filter, d: dedupe window, m: names from a
//    property}; filter: {p, f: standard field, t: type, o: op, v: [values], x: [options]},
//   types and operations as short codes: s n t d e b for string, number,
//   datetime, date, enumeration, bool; eq ne co nc sw ew re in ni gt ge lt le
//   bt k u for is_equal_to … is_unknown, in rules.Op's order).
// ev: the completion as sent to the collector ({id, name, props, consent, …}).
// emit(kind, data): the snippet's debug hook.

// The negative operations hold exactly when their positive twin does not
// (for a known value; an unknown value satisfies only is_unknown).
var NEG = { ne: 'eq', nc: 'co', ni: 'in' };

// fold lowercases per character, as Go's rules.fold does (so the final
// sigma rule of a whole-string toLowerCase does not apply).
function fold(s) {
  var o = '';
  for (var c of s) o += c.toLowerCase();
  return o;
}

// scalar is a property value as the collector stores its text: strings as
// they are, numbers and bools as JSON writes them, lists joined by ';';
// null is empty; anything else is dropped (undefined).
function scalar(v) {
  if (Array.isArray(v)) {
    v = v.map(scalar);
    return v.indexOf() < 0 ? v.join(';') : void 0;
  }
  var t = typeof v;
  return v == null ? '' : t == 'string' ? v : t == 'boolean' || (t == 'number' && isFinite(v)) ? String(v) : void 0;
}

// props reads a completion's properties as the collector does: names sorted
// as sent, the first 50 kept, lower-cased (the last of equal names wins),
// values cut to 256 characters (1,024 for url, referrer and link names).
function props(ev) {
  var raw = ev.props || {};
  var m = {};
  Object.keys(raw)
    .sort()
    .filter(function (k) {
      return scalar(raw[k]) != null;
    })
    .slice(0, 50)
    .forEach(function (k) {
      var v = Array.from(scalar(raw[k]));
      var n = k.toLowerCase();
      var max = /url|referrer|link/.test(n) ? 1024 : 256;
      m[n] = v.slice(0, max).join('');
    });
  return m;
}

// ms reads epoch milliseconds or ISO 8601 as Go's ingest.ParseTime does,
// zone-less times being UTC; undefined when it is neither.
function ms(s) {
  s = s.trim();
  if (/^[+-]?\d+$/.test(s)) return +s >= 0 && +s <= 253402300799999 ? +s : void 0;
  var m = /^(\d{4})-(\d\d)-(\d\d)(?:([T ])(\d\d):(\d\d):(\d\d)(?:[.,](\d+))?(Z|([+-])(\d\d):?(\d\d))?)?$/.exec(s);
  if (!m || (m[4] == ' ' && m[9]) || m[5] > 23 || m[6] > 59 || m[7] > 59) return;
  var d = new Date(0);
  d.setUTCFullYear(m[1], m[2] - 1, m[3]);
  if (d.getUTCDate() != m[3] || d.getUTCMonth() != m[2] - 1) return;
  var t = d.getTime() + ((m[5] || 0) * 60 + (m[6] || 0) * 1) * 6e4 + (m[7] || 0) * 1e3 + +((m[8] || '') + '000').slice(0, 3);
  return m[10] ? t - (m[10] + 1) * (m[11] * 60 + +m[12]) * 6e4 : t;
}

// qv decodes one query value as Go's enrich.queryValue does: + is a
// space, a malformed escape keeps the raw text, spaces are trimmed.
function qv(raw) {
  try {
    raw = decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch (e) {}
  return raw.trim();
}

// The click-id parameters the server keeps (enrich.clickParams with store).
var CLICK = ['gclid', 'gbraid', 'wbraid', 'msclkid', 'yclid', 'dclid', 'fbclid', 'ttclid', 'li_fat_id', 'twclid', 'epik', 'rdt_cid', 'sccid'];
// meta keeps one of Meta's cookies as the collector does (ingest.metaCookie).
function meta(v) {
  return typeof v == 'string' && v.length <= 256 && v.slice(0, 3) == 'fb.' && v.split('.').length > 3 && /^[\x21\x23-\x3b\x3d\x3f-\x7e]*$/.test(v) ? v : '';
}

function cut(s, n) {
  return Array.from(typeof s == 'string' ? s : '').slice(0, n).join('');
}

// fields reads a completion's standard fields as the collector and the
// enricher derive them from the page (ingest/browserparse.go,
// ingest/enrich/attribution.go): the path, UTM tags and first click id of
// the URL, and Meta's cookies. Site and source are decided when the
// script is built.
function fields(ev) {
  var url = cut(ev.url, 1024);
  var f = { url: url, referrer: cut(ev.ref, 1024), page_title: cut(ev.title, 256), fbp: meta(ev.fbp), fbc: meta(ev.fbc) };
  var s = url.trim().split('#')[0];
  var q = s.indexOf('?');
  var query = q < 0 ? '' : s.slice(q + 1);
  if (q >= 0) s = s.slice(0, q);
  var m = /^([A-Za-z][A-Za-z0-9+.-]*:)?\/\/[^/\\]*(.*)$/.exec(s);
  var path = m ? m[2] : s[0] == '/' ? s : '';
  if (m && !path) path = '/';
  if (path.indexOf('%') >= 0) {
    try {
      path = decodeURIComponent(path);
    } catch (e) {}
  }
  f.path = path;
  query.split('&').forEach(function (pair) {
    var i = pair.indexOf('=');
    var k = i < 0 ? pair : pair.slice(0, i);
    var raw = i < 0 ? '' : pair.slice(i + 1);
    var lk = k.toLowerCase();
    if (k.length > 4 && lk.slice(0, 4) == 'utm_') {
      lk = 'utm_' + lk.slice(4);
      if (/^utm_(source|medium|campaign|term|content)$/.test(lk) && !f[lk]) f[lk] = qv(raw);
    } else if (has(CLICK, lk) && !f.click_id_param && qv(raw)) {
      f.click_id_param = lk;
      f.click_id = qv(raw);
    }
  });
  var id = /[?&]fbclid=([^&#]*)/.exec(url);
  if (id) {
    try {
      id = decodeURIComponent(id[1].replace(/\+/g, ' '));
    } catch (e) {
      id = '';
    }
  }
  if (!f.fbc && id && id.length <= 200) f.fbc = meta('fb.1.' + ev.ts + '.' + id);
  return f;
}

// norm is a value in its comparable form, as the server stores and the
// rules engine reads it; undefined when unknown (absent, empty, or not
// valid for the type, which the collector drops).
function norm(t, s, opts) {
  if (s == null || s === '') return;
  if (t == 's') return s;
  if (t == 'n') {
    s = s.trim();
    return /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s) && isFinite((s = +s)) ? s : void 0;
  }
  if (t == 'b') {
    s = s.trim().toLowerCase();
    return s == 'true' || s == 'false' ? s : void 0;
  }
  if (t == 'e') {
    s = s.split(';');
    return s.every(function (o) {
      return opts.indexOf(o) >= 0;
    })
      ? s
      : void 0;
  }
  s = ms(s); // datetime, date
  return t == 'd' && s % 864e5 ? void 0 : s;
}

function has(list, x) {
  return list.indexOf(x) >= 0;
}

// test reports whether the property values p (or, for a standard field,
// the fields s) satisfy filter f.
function test(f, p, s) {
  var t = f.t;
  var o = f.o;
  var v = norm(t, (f.f ? s : p)[f.p], f.x);
  if (o == 'k') return v != null;
  if (o == 'u') return v == null;
  if (v == null) return false;
  var neg = NEG[o];
  if (neg) o = neg;
  var w = f.v.map(function (s) {
    return norm(t, s, f.x);
  });
  var a = w[0];
  var r;
  if (t == 's') {
    var s = fold(v);
    w = w.map(fold);
    a = w[0];
    r =
      o == 're'
        ? new RegExp(f.v[0], 'isu').test(v)
        : o == 'co'
          ? s.indexOf(a) >= 0
          : o == 'sw'
            ? s.startsWith(a)
            : o == 'ew'
              ? s.endsWith(a)
              : has(w, s); // is_equal_to, is_any_of
  } else if (t == 'e') {
    var all = a.every(function (x) {
      return has(v, x);
    });
    r =
      o == 'eq'
        ? all &&
          v.every(function (x) {
            return has(a, x);
          })
        : o == 'co'
          ? all
          : v.some(function (x) {
              return has([].concat.apply([], w), x);
            }); // is_any_of
  } else {
    // number, datetime, date (numbers) and bool (strings)
    r =
      o == 'gt'
        ? v > a
        : o == 'ge'
          ? v >= a
          : o == 'lt'
            ? v < a
            : o == 'le'
              ? v <= a
              : o == 'bt'
                ? a <= v && v <= w[1]
                : has(w, v); // is_equal_to, is_any_of
  }
  return neg ? !r : r;
}

function all(fs, p, s) {
  return (fs || []).every(function (f) {
    return test(f, p, s);
  });
}

// names are the Meta event names rule r forwards ev as: its fixed name, or
// with r.m (event_name_from: {p, t, x, k: map, y: standard names}) each
// mapped value, as the rules engine's eventNames (rules/mapping.go): each
// selected option of an enumeration in the order sent, a string's value
// ignoring case; none when nothing is mapped.
function names(r, p) {
  var m = r.m;
  if (!m) return [[r.c ? 'trackCustom' : 'track', r.n]];
  var v = norm(m.t, p[m.p], m.x);
  var out = [];
  if (v == null) return out;
  var keys = Object.keys(m.k);
  (m.t == 'e' ? v : [v]).forEach(function (o) {
    keys.forEach(function (k) {
      var n = m.k[k];
      if ((m.t == 'e' ? k == o : fold(k) == fold(o)) && !out.some(function (c) { return c[1] == n; }))
        out.push([has(m.y || [], n) ? 'track' : 'trackCustom', n]);
    });
  });
  return out;
}

// decide returns the fbq arguments rule r calls for completion ev: a list
// of calls, or null when it does not match. Consent is the caller's to
// check.
export function decide(r, ev) {
  var p = props(ev);
  // __FIELDS__ and __DEDUPE__ are defined when the script is built: false
  // when no mirror rule of the site filters on a standard field or has a
  // dedupe window, so the code is left out of the script.
  var s = __FIELDS__ ? fields(ev) : {};
  var any = function (g) {
    return all(g, p, s);
  };
  if (!has(r.e, ev.name) || !all(r.w, p, s) || (r.a && !r.a.some(any)) || (r.g && !test(r.g, p, s))) return null;
  var params = {};
  var v = r.v;
  if (v) {
    var n = norm('n', p[v.p]);
    n = v.f != null ? v.f : n > 0 ? n : v.d;
    if (n != null) {
      params.value = n;
      if (r.$) params.currency = r.$;
    }
  }
  var calls = names(r, p).map(function (n) {
    return [n[0], n[1], params, { eventID: ev.id }];
  });
  return calls.length ? calls : null;
}

// Duplicate submissions: a rule with a dedupe window (r.d: {b: [{k, f:
// field, i: identify trait}], w: ms}) fires for the first of the
// completions that agree on every key within the window, as the rules
// engine forwards only that one (rules/dedupe.go). The memory holds hashes
// of the keys, never the values (an email), and event ids, in
// localStorage when the page allows it.
var MEMO = 'tally_md';
var memo;

// hash is cyrb53: a 53-bit string hash; the values cannot be read back.
function hash(s) {
  var a = 0xdeadbeef;
  var b = 0x41c6ce57;
  for (var i = 0; i < s.length; i++) {
    var c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 2654435761);
    b = Math.imul(b ^ c, 1597334677);
  }
  a = Math.imul(a ^ (a >>> 16), 2246822507) ^ Math.imul(b ^ (b >>> 13), 3266489909);
  b = Math.imul(b ^ (b >>> 16), 2246822507) ^ Math.imul(a ^ (a >>> 13), 3266489909);
  return (b >>> 0).toString(36) + '.' + (a >>> 0).toString(36);
}

// duplicate reports whether ev repeats a completion r mirrored within its
// window, and otherwise remembers ev.
function duplicate(r, ev) {
  var d = r.d;
  if (!d) return false;
  var p = props(ev);
  var s = fields(ev);
  var known = false;
  var k = r.r;
  d.b.forEach(function (b) {
    var v = b.i ? (ev.traits || {})[b.k] : (b.f ? s : p)[b.k];
    v = fold(String(v == null ? '' : v).trim());
    known = known || v != '';
    k += '\0' + v;
  });
  if (!known) return false;
  try {
    memo = memo || JSON.parse(localStorage.getItem(MEMO)) || {};
  } catch (e) {
    memo = memo || {};
  }
  k = hash(k);
  var m = memo[k];
  var t = ev.ts;
  if (m && m[0] != ev.id && Math.abs(t - m[1]) < d.w) return true;
  memo[k] = [ev.id, t, t + d.w];
  for (var x in memo) if (memo[x][2] < t) delete memo[x];
  try {
    localStorage.setItem(MEMO, JSON.stringify(memo));
  } catch (e) {}
  return false;
}

// mirror calls fbq for every rule that matches ev, synchronously (so it is
// done even when the page unloads right after track). Without ads consent,
// or with Global Privacy Control on, it calls nothing; when the page has no
// fbq it only reports to the debug hook.
export function mirror(rules, ev, emit) {
  var fbq = window.fbq;
  if (!ev.consent || !ev.consent.ads || navigator.globalPrivacyControl) return;
  rules.forEach(function (r) {
    var args;
    try {
      args = decide(r, ev);
    } catch (e) {} // a rule the browser cannot evaluate mirrors nothing
    if (!args) return;
    if (__DEDUPE__ && duplicate(r, ev)) {
      if (emit) emit('mirror_duplicate', { rule: r.r, id: ev.id });
      report(ev, r.r, 'duplicate');
      return;
    }
    args.forEach(function (a) {
      if (emit) emit('mirror', { rule: r.r, args: a });
      if (typeof fbq == 'function') fbq(a[0], a[1], a[2], a[3]);
    });
    // What became of the call, for the console's deduplication view: sent
    // to a loaded pixel, queued in Meta's stub before its library loaded
    // (lost if the page closes first), or no pixel on the page.
    report(ev, r.r, typeof fbq != 'function' ? 'no_pixel' : fbq.queue && !fbq.callMethod ? 'queued' : 'sent');
  });
}

// report notes on the completion what the mirror did for rule r; the
// collector stores it with the completion ("*" is the whole completion).
export function report(ev, r, what) {
  (ev.mirror = ev.mirror || {})[r] = what;
}
