// Runs graphql-http's server audits (GraphQL over HTTP spec) against a URL with Node's fetch.
// Usage: node graphql_http_audit.mjs URL NODE_PREFIX   (NODE_PREFIX: where graphql-http is installed)
// Every request carries `Authorization: Bearer $PANTHEON_AUDIT_TOKEN` (Pantheon refuses anonymous
// operations with 401).
// Prints every audit's id, result and name; exits 1 unless every audit is `ok`.
import { createRequire } from 'node:module';
import { join } from 'node:path';

const [url, prefix] = process.argv.slice(2);
if (!url || !prefix) {
  console.error('usage: node graphql_http_audit.mjs URL NODE_PREFIX');
  process.exit(2);
}
const require = createRequire(join(prefix, 'package.json'));
const { serverAudits } = require('graphql-http');
const version = require('graphql-http/package.json').version;

const token = process.env.PANTHEON_AUDIT_TOKEN;
if (!token) {
  console.error('PANTHEON_AUDIT_TOKEN is not set');
  process.exit(2);
}
// The audits' own headers stay; the token is added to each request.
function authorizedFetch(input, init = {}) {
  if (input instanceof Request) {
    const request = new Request(input, init);
    if (!request.headers.has('authorization')) request.headers.set('authorization', `Bearer ${token}`);
    return fetch(request);
  }
  const headers = new Headers(init.headers || {});
  if (!headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const audits = serverAudits({ url, fetchFn: authorizedFetch });
const counts = {};
let failed = 0;
console.log(`graphql-http ${version}: ${audits.length} server audits against ${url}`);
for (const { id, name, fn } of audits) {
  let result;
  try {
    result = await fn();
  } catch (error) {
    result = { id, name, status: 'fatal', reason: String(error && error.stack ? error.stack : error) };
  }
  counts[result.status] = (counts[result.status] || 0) + 1;
  console.log(`${result.status.padEnd(6)} ${id} ${name}`);
  if (result.status !== 'ok') {
    failed += 1;
    console.log(`       reason: ${result.reason}`);
    if (result.response) {
      const res = result.response;
      let body = '';
      try {
        body = await res.text();
      } catch {
        body = '<body already read>';
      }
      console.log(`       response: ${res.status} ${res.headers.get('content-type')} ${body.slice(0, 300)}`);
    }
  }
}
const summary = Object.entries(counts).map(([status, n]) => `${n} ${status}`).join(', ');
console.log(`summary: ${counts.ok || 0}/${audits.length} ok (${summary})`);
if (failed > 0 || audits.length === 0) {
  console.error(`FAIL: ${failed} of ${audits.length} graphql-http audits are not ok`);
  process.exit(1);
}
