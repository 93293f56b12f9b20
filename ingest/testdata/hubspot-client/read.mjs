// Reads completions back from tally through HubSpot's official client
// (events.eventsApi.getPage), following paging.next.after to the end, and
// prints one JSON line per call.
// Usage: TALLY_URL=http://127.0.0.1:PORT TALLY_TOKEN=... TALLY_SEND_TOKEN=... node read.mjs
import { Client } from '@hubspot/api-client';

const client = new Client({ accessToken: process.env.TALLY_TOKEN, basePath: process.env.TALLY_URL, numberOfApiCallRetries: 0 });

async function attempt(name, fn) {
  try {
    const res = await fn();
    console.log(JSON.stringify({ call: name, ok: true, result: res ?? null }));
  } catch (e) {
    let body = e.body;
    if (typeof body === 'string') { try { body = JSON.parse(body); } catch { /* keep text */ } }
    console.log(JSON.stringify({ call: name, ok: false, code: e.code, body }));
  }
}

// getPage(objectType, eventType, after, before, limit, sort, occurredAfter,
//         occurredBefore, objectId, objectPropertyPropname, propertyPropname, id)
let after;
for (let page = 0; page < 10; page++) {
  const name = 'page' + page;
  let res;
  await attempt(name, async () => {
    res = await client.events.eventsApi.getPage('contact', undefined, after, undefined, 2, ['DESCENDING'],
      undefined, undefined, undefined, { 'objectProperty.email': 'Ada@Example.com' });
    return res;
  });
  after = res?.paging?.next?.after;
  if (!after) break;
}
await attempt('filtered', () => client.events.eventsApi.getPage('contact', 'pe1234567_viewed_car', undefined, undefined, 10, ['ASCENDING'],
  new Date('2026-01-01T00:00:00Z'), new Date('2026-12-31T00:00:00Z')));
const sendOnly = new Client({ accessToken: process.env.TALLY_SEND_TOKEN, basePath: process.env.TALLY_URL, numberOfApiCallRetries: 0 });
await attempt('sendOnly', () => sendOnly.events.eventsApi.getPage('contact'));
