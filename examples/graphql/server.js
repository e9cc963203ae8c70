// A GraphQL API over crm_access, served by PostGraphile 4 (examples/graphql/api.sql sets up
// the schema and the login). A request acts as the CRM user named by the subject ("sub") of
// its bearer token, an HS256 JWT signed with JWT_SECRET; PostGraphile's pgSettings sets
// crm.user_name for that request's transaction only (set_config(..., true)), which is what
// crm_access requires and what keeps a pooled connection clean for the next request. A request
// without a token acts as nobody and sees nothing; a request with a bad token is refused.
//
//   DATABASE_URL=postgres://crm_graphql@127.0.0.1:6432/crm JWT_SECRET=... PORT=5678 node server.js
'use strict';

// Behind a transaction pooler (PgBouncer before 1.21), named prepared statements would land on
// other clients' server connections: PostGraphile's cache of them is off (below 2).
process.env.POSTGRAPHILE_PREPARED_STATEMENT_CACHE_SIZE ??= '1';

const http = require('http');
const jwt = require('jsonwebtoken');
const { postgraphile } = require('postgraphile');

const secret = process.env.JWT_SECRET;
if (!secret || !process.env.DATABASE_URL) {
  console.error('DATABASE_URL and JWT_SECRET must be set');
  process.exit(2);
}

// The CRM user of a request: undefined without a token, null for a bad one.
function actingUser(req) {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const m = /^Bearer ([^ ]+)$/.exec(header);
  if (!m) return null;
  try {
    const claims = jwt.verify(m[1], secret, { algorithms: ['HS256'] });
    return typeof claims.sub === 'string' && claims.sub !== '' ? claims.sub : null;
  } catch {
    return null;
  }
}

const graphql = postgraphile(process.env.DATABASE_URL, 'api', {
  // Only what crm_graphql is granted appears in the schema: sales.leads (the unmasked
  // table) is not granted, so no type, field or query reaches it.
  ignoreRBAC: false,
  dynamicJson: true,
  setofFunctionsContainNulls: false,
  extendedErrors: ['errcode', 'detail', 'hint'],
  disableQueryLog: true,
  graphiql: false,
  pgSettings: async (req) => {
    const user = actingUser(req);
    return user ? { 'crm.user_name': user } : {};
  },
});

const server = http.createServer((req, res) => {
  if (actingUser(req) === null) {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ message: 'invalid bearer token' }] }));
    return;
  }
  graphql(req, res);
});
server.listen(Number(process.env.PORT || 5678), '127.0.0.1', () => {
  console.log(`crm_access GraphQL API on http://127.0.0.1:${server.address().port}/graphql`);
});
