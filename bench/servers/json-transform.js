// json-transform.js — Node.js twin of the `json-transform` guest
// (guests/json-transform/src/lib.rs), the native baseline for its benchmark.
// Node 20, built-in `http` only. Listens on 127.0.0.1:$PORT (default 8081).
//
// Any request (normally POST, any path): the body must be a JSON array. Array
// elements that are objects with `"active": true` are kept in order; each gets
// `total` = price * quantity (a missing or non-number price/quantity counts as
// 0) and, if `name` is a string, `name_upper` = name.toUpperCase(), appended
// after its existing keys (or updated in place if already present).
//   200 application/json {"count":<kept>,"sum_total":<sum of totals>,"records":[...]}
//   400 application/json {"error":"<message>"}   invalid JSON, or not an array
// JSON.stringify writes integral numbers without a fraction and non-finite
// numbers as null; the guest does the same for `total` and `sum_total`, so
// outputs match byte for byte for ordinary inputs (error texts differ).
'use strict';

const http = require('http');

function transform(text) {
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return { status: 400, body: { error: `invalid JSON: ${e.message}` } };
  }
  if (!Array.isArray(parsed)) {
    return { status: 400, body: { error: 'expected a JSON array of records' } };
  }
  const num = (v) => (typeof v === 'number' ? v : 0);
  const records = [];
  let sumTotal = 0;
  for (const record of parsed) {
    if (record === null || typeof record !== 'object' || Array.isArray(record)) continue;
    if (record.active !== true) continue;
    const total = num(record.price) * num(record.quantity);
    sumTotal += total;
    record.total = total;
    if (typeof record.name === 'string') record.name_upper = record.name.toUpperCase();
    records.push(record);
  }
  return { status: 200, body: { count: records.length, sum_total: sumTotal, records } };
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const { status, body } = transform(Buffer.concat(chunks).toString('utf8'));
    const payload = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload),
    });
    res.end(payload);
  });
});

const port = Number(process.env.PORT || 8081);
server.listen(port, '127.0.0.1', () => {
  console.log(`json-transform.js listening on http://127.0.0.1:${port}`);
});
