// tally's browser tracker. Built per site by snippet.Builder: esbuild bundles
// this file with ./mirror.js, replaces __TALLY__ with the site's config and
// minifies the result. It must stay small (budget: 4 KB gzipped) and run on
// every browser still in use, so it is plain ES2017 without dependencies.
//
// __TALLY__ = {
//   s: site id,
//   e: collection path, resolved against this script's own URL,
//   c: capture triggers, [[event, "c", css selector] | [event, "v", url pattern]],
//   m: pixel mirror rules (JSON from the rules engine) or null,
// }
//
// Wire format (POST text/plain, so no CORS preflight):
//   {"site","sent","lang","events":[{"id","name","ts","props","url","ref",
//     "title","consent":{"analytics","ads"},"traits","fbp","fbc",
//     "mirror":{rule: sent|queued|no_pixel|duplicate, "*": no_consent|gpc},
//     "debug"}]}

import { mirror, report } from './mirror.js';

var C = __TALLY__;
var w = window;
var d = document;
var nav = navigator;
var loc = location;

// Storage keys. The retry queue is kept only with analytics consent, and
// never holds identify traits: localStorage is readable by every script on
// the page (the visitor cookie is HttpOnly for that reason), so an email or
// phone number must not sit there in clear text. Traits live in memory for
// the page; the collector links the visitor to them on the first completion
// that carries them, or, when none does, from a batch holding only the
// traits sent as the page is left. The consent choice itself is always kept, since
// remembering an opt-out is what the visitor asked for.
var QUEUE = 'tally_q';
var CONSENT = 'tally_consent';
var DEBUG = 'tally_debug'; // debug mode: the console highlights this browser's completions

// Retry queue bounds: 100 completions, each kept at most 24 h (a browser
// back online after a day sends what it missed; older is noise).
var MAX_QUEUE = 100;
var MAX_AGE = 864e5;
// A keepalive fetch or beacon may carry at most 64 KiB, shared by all of the
// page's requests in flight; 60,000 characters leaves room for the rest.
var MAX_BODY = 6e4;

function load(k) {
  try {
    return JSON.parse(localStorage.getItem(k));
  } catch (e) {}
}

function save(k, v, replacer) {
  try {
    v == null ? localStorage.removeItem(k) : localStorage.setItem(k, JSON.stringify(v, replacer));
  } catch (e) {}
}

// uuid is an RFC 4122 version 4 id from crypto.getRandomValues, which,
// unlike crypto.randomUUID, exists on plain-http origins too (and in every
// browser since 2013, so there is no Math.random fallback).
function uuid() {
  var b = w.crypto.getRandomValues(new Uint8Array(16));
  var i;
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  var h = '';
  for (i = 0; i < 16; i++) {
    h += (b[i] + 256).toString(16).slice(1);
    if (i == 3 || i == 5 || i == 7 || i == 9) h += '-';
  }
  return h;
}

function cookie(name) {
  var m = d.cookie.match('(?:^|; )' + name + '=([^;]*)');
  return m ? m[1] : '';
}

function init() {
  var script = d.currentScript;
  var endpoint = new URL(C.e, (script && script.src) || loc.href).href;
  var gpc = !!nav.globalPrivacyControl;
  // Default consent: analytics on, ads on unless GPC. A site that must ask
  // first adds data-consent="required" to the script tag (or queues
  // tally('consent', ...) before anything else).
  var required = !!script && script.getAttribute('data-consent') == 'required';
  var consent = load(CONSENT) || { analytics: !required, ads: !required };
  var traits = {};
  var untold; // traits given since a completion last carried them
  save('tally_u'); // traits an earlier version of the tracker kept there
  var outbox = [];
  var retry = [];
  var hooks = [];
  var scheduled = 0;
  var timer = 0;
  var backoff = 0;
  var lastTS = 0;
  var lastURL = '';
  var dbg = /[?&]tally_debug=([01])/.exec(loc.search);
  dbg = dbg ? save(DEBUG, +dbg[1] || null) || +dbg[1] : load(DEBUG);
  var clickedAt = {}; // event name → when a click capture last tracked it
  var ref = d.referrer;

  function emit(kind, data) {
    for (var i = 0; i < hooks.length; i++) {
      try {
        hooks[i](kind, data);
      } catch (e) {}
    }
  }

  function ads() {
    return !!consent.ads && !gpc;
  }

  // Meta's browser ids: _fbp and _fbc are read as the pixel left them. A new
  // fbclid in the URL makes a new _fbc (its case kept: Meta compares it
  // exactly), and _fbp is created when the site mirrors to a pixel that
  // has not set one yet.
  function setCookie(name, v) {
    d.cookie =
      name + '=' + v + '; path=/; max-age=7776000; samesite=lax' + (loc.protocol == 'https:' ? '; secure' : '');
  }

  function metaIDs(ev) {
    var fbc = cookie('_fbc');
    var fbp = cookie('_fbp');
    var click = new URLSearchParams(loc.search).get('fbclid');
    if (click && fbc.split('.').slice(3).join('.') != click) setCookie('_fbc', (fbc = 'fb.1.' + Date.now() + '.' + click));
    if (!fbp && C.m) setCookie('_fbp', (fbp = 'fb.1.' + Date.now() + '.' + ((Math.random() * 2e9) | 0)));
    if (fbp) ev.fbp = fbp;
    if (fbc) ev.fbc = fbc;
  }

  function track(name, props) {
    // Timestamps strictly increase so that calls made in one millisecond
    // keep their order when sorted by time.
    var ts = (lastTS = Math.max(Date.now(), lastTS + 1));
    var ev = {
      id: uuid(),
      name: name,
      ts: ts,
      props: props || {},
      url: loc.href,
      ref: ref,
      title: d.title,
      consent: { analytics: !!consent.analytics, ads: ads() },
    };
    if (consent.analytics) {
      for (var k in traits) {
        ev.traits = traits;
        untold = 0;
        break;
      }
    }
    if (dbg) ev.debug = !0;
    if (ev.consent.ads) {
      metaIDs(ev);
      if (C.m) mirror(C.m, ev, emit);
    } else if (C.m) report(ev, '*', gpc ? 'gpc' : 'no_consent');
    outbox.push(ev);
    emit('track', ev);
    if (!scheduled) scheduled = setTimeout(flush, 0);
  }

  function flush(beacon) {
    clearTimeout(scheduled);
    scheduled = 0;
    if (beacon && untold && consent.analytics) tell({ traits: traits });
    if (outbox.length) send(outbox.splice(0), beacon === 1);
  }

  function send(evs, beacon) {
    var body = JSON.stringify({ site: C.s, sent: Date.now(), lang: nav.language, events: evs });
    if (body.length > MAX_BODY && evs.length > 1) {
      var half = evs.length >> 1;
      send(evs.slice(0, half), beacon);
      send(evs.slice(half), beacon);
      return;
    }
    emit('send', { events: evs, beacon: beacon });
    // On the way out of the page only a beacon is sure to leave; its answer
    // cannot be read, so a queued beacon counts as delivered.
    if (beacon && nav.sendBeacon && nav.sendBeacon(endpoint, body)) return;
    fetch(endpoint, { method: 'POST', body: body, keepalive: body.length < MAX_BODY, credentials: 'include' }).then(
      function (r) {
        emit('result', r.status);
        // 4xx other than 429 will not get better by retrying.
        if (r.ok || (r.status >= 400 && r.status < 500 && r.status != 429)) done(evs);
        else fail(evs);
      },
      function () {
        emit('result', 0);
        fail(evs);
      }
    );
  }

  function ids(evs) {
    var m = {};
    for (var i = 0; i < evs.length; i++) m[evs[i].id] = 1;
    return m;
  }

  function keep(list) {
    var now = Date.now();
    retry = list.filter(function (e) {
      return now - e.ts < MAX_AGE;
    });
    retry = retry.slice(-MAX_QUEUE);
    // Stored without traits: a replay after a reload sends the completion
    // without the traits it had in memory.
    save(QUEUE, consent.analytics && retry.length ? retry : null, function (k, v) {
      return k == 'traits' ? void 0 : v;
    });
  }

  function done(evs) {
    var sent = ids(evs);
    keep(
      retry.filter(function (e) {
        return !sent[e.id];
      })
    );
    backoff = 0;
  }

  // fail keeps the completions for later: on the next load, on `online`,
  // and after a capped, jittered exponential backoff (2 s, 4 s, … 64 s).
  // The collector ignores an event id it has seen, so resending is safe.
  function fail(evs) {
    var have = ids(retry);
    keep(
      retry.concat(
        evs.filter(function (e) {
          return !have[e.id];
        })
      )
    );
    backoff = Math.min(backoff + 1, 6);
    clearTimeout(timer);
    timer = setTimeout(replay, (1e3 << backoff) * (0.5 + Math.random()));
  }

  function replay() {
    clearTimeout(timer);
    if (retry.length) send(retry.slice(), false);
  }

  // Visited-URL patterns: * matches any run of characters; a pattern
  // starting with / is matched against path and query, else the full URL.
  function visited(pattern) {
    var re = new RegExp(
      '^' +
        pattern
          .split('*')
          .map(function (s) {
            return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
          })
          .join('.*') +
        '$'
    );
    return re.test(pattern[0] == '/' ? loc.pathname + loc.search : loc.href) || re.test(loc.pathname);
  }

  function page() {
    var url = loc.href.split('#')[0];
    if (url == lastURL) return;
    if (lastURL) ref = lastURL;
    lastURL = url;
    track('page_view');
    C.c.forEach(function (c) {
      // A page a click capture of the same event led to (a single-page
      // app's link) was counted by the click.
      if (c[1] == 'v' && visited(c[2]) && !(clickedAt[c[0]] > Date.now() - 1e3)) track(c[0]);
    });
  }

  // Clicked-element captures: one delegated listener; data-tally-<name>
  // attributes on the matched element become properties (<name> with - as _).
  function clicked(e) {
    var t = e.target;
    C.c.forEach(function (c) {
      var el = c[1] == 'c' && t && t.closest && t.closest(c[2]);
      if (!el) return;
      var props = {};
      for (var i = 0; i < el.attributes.length; i++) {
        var a = el.attributes[i];
        if (a.name.indexOf('data-tally-') == 0) props[a.name.slice(11).replace(/-/g, '_')] = a.value;
      }
      clickedAt[c[0]] = Date.now();
      track(c[0], props);
    });
  }

  function identify(t) {
    for (var k in t) if (t[k] != null && t[k] !== '') traits[k] = String(t[k]);
    untold = 1;
  }

  // tell sends the collector a batch with no events: identify traits no
  // completion carried (so the server links the visitor to them before the
  // page's memory of them is gone), or a consent withdrawal.
  function tell(o) {
    o.site = C.s;
    o.events = [];
    untold = 0;
    nav.sendBeacon(endpoint, JSON.stringify(o));
  }

  function setConsent(o) {
    o = o || {};
    var had = consent.analytics;
    if (o.analytics != null) consent.analytics = !!o.analytics;
    if (o.ads != null) consent.ads = !!o.ads;
    save(CONSENT, consent);
    if (!consent.analytics) {
      // Withdrawn: forget the traits, drop what waits to be sent with the
      // visitor's ids, and have the collector expire the cookies it set
      // (HttpOnly: the page cannot clear them itself).
      traits = {};
      save(QUEUE);
      retry = [];
      outbox.length = 0;
      if (had) tell({ consent: consent });
    }
  }

  var commands = {
    track: track,
    identify: identify,
    page: page,
    consent: setConsent,
    // tally('debug', fn) adds a hook; tally('debug', true|false) turns the
    // console's debug mode on or off for this browser (as ?tally_debug=1|0).
    debug: function (f) {
      f.call ? hooks.push(f) : save(DEBUG, (dbg = !!f) || null);
    },
  };

  function run(args) {
    var f = commands[args[0]];
    if (f) f.apply(null, [].slice.call(args, 1));
  }

  var queued = (w.tally && w.tally.q) || [];
  var api = function () {
    run(arguments);
  };
  api.l = 1;
  w.tally = api;

  // Consent and debug hooks first, so that the page view and every queued
  // completion obey them; then the page view; then the other queued calls
  // in the order they were made (identify rides on what follows it).
  var later = [];
  queued.forEach(function (a) {
    a[0] == 'consent' || a[0] == 'debug' ? run(a) : later.push(a);
  });
  keep(consent.analytics ? load(QUEUE) || [] : []);
  page();
  later.forEach(run);
  replay();

  ['pushState', 'replaceState'].forEach(function (k) {
    var orig = history[k];
    history[k] = function () {
      var r = orig.apply(this, arguments);
      page();
      return r;
    };
  });
  w.addEventListener('popstate', page);
  w.addEventListener('pageshow', function (e) {
    if (e.persisted) {
      lastURL = '';
      page();
    }
  });
  w.addEventListener('online', replay);
  w.addEventListener('pagehide', function () {
    flush(1);
  });
  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState == 'hidden') flush(1);
  });
  d.addEventListener('click', clicked, true);
}

if (!(w.tally && w.tally.l)) init();
