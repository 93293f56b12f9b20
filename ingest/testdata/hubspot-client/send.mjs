// Sends completions to tally through HubSpot's official client with its base
// path pointed at tally, and prints what happened as one JSON line per call.
// Usage: TALLY_URL=http://127.0.0.1:PORT TALLY_TOKEN=... node send.mjs
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

await attempt('basic', () => client.events.send.basicApi.send({
  eventName: 'pe1234567_viewed_car',
  email: 'ada@example.com',
  uuid: '11111111-2222-4333-8444-555555555555',
  occurredAt: new Date('2026-01-02T03:04:05.678Z'),
  properties: { make: 'volvo', year: '2020' },
}));
await attempt('batch', () => client.events.send.batchApi.send({
  inputs: [
    { eventName: 'viewed_car', utk: 'abc123', uuid: '11111111-2222-4333-8444-666666666666', properties: { make: 'saab' } },
    { eventName: 'viewed_car', objectId: '42', uuid: '11111111-2222-4333-8444-777777777777', properties: { referrer_note: 'dealer site' } },
  ],
}));
await attempt('invalid', () => client.events.send.batchApi.send({
  inputs: [
    { eventName: 'viewed_car', email: 'ada@example.com', properties: { year: 'new' } },
    { eventName: 'no_such_event', email: 'ada@example.com', properties: {} },
  ],
}));
