// Runs panva's oidc-provider configured as an MCP deployment's
// authorization server, for stepup's tests (see oidcprovider.go):
//
//   - open dynamic client registration (RFC 7591);
//   - PKCE required for every client;
//   - resource indicators (RFC 8707): the one resource named in the
//     configuration gets JWT access tokens (RFC 9068) with it as audience,
//     carrying the resource scopes granted, acr and auth_time;
//   - openid and offline_access are the OpenID scopes; a refresh token only
//     for offline_access, rotated on every use, and a rotated one used again
//     revokes the grant;
//   - acr values for step-up authentication (RFC 9470): a request whose
//     acr_values the session does not satisfy sends the person to log in
//     again, as max_age does;
//   - token revocation (RFC 7009);
//   - DPoP (RFC 9449), which the provider honours by default; with the
//     dpop option, every client's tokens are bound and every proof must
//     carry the provider's nonce.
//
// The interaction pages are this file's own, minimal HTML forms: a login
// form (account and acr) and a consent form (allow some or all of the
// scopes asked, or deny).
//
// Configuration comes as one JSON argument; when listening, the script
// prints one JSON line {"listening": "http://127.0.0.1:PORT"} on stdout.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

const cfg = JSON.parse(process.argv[2]);
const {
  issuer, resource, accessTokenTTL, acrValues, resourceScopes, packageDir, admin, dpop,
} = cfg;

// The package is installed apart from this file, in packageDir.
const entry = createRequire(path.join(packageDir, 'package.json')).resolve('oidc-provider');
const { default: Provider, errors, interactionPolicy } = await import(pathToFileURL(entry).href);

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };
}

// The login prompt also asks for a new login when acr_values were requested
// and the session's acr is none of them (RFC 9470 §3: the resource server
// asked for a stronger authentication than the one the session has).
const policy = interactionPolicy.base();
policy.get('login').checks.add(new interactionPolicy.Check(
  'acr_values_unmet',
  'the requested authentication context class was not obtained',
  (ctx) => {
    const requested = ctx.oidc.params.acr_values?.split(' ').filter(Boolean) ?? [];
    if (!requested.length || !ctx.oidc.session.accountId) {
      return interactionPolicy.Check.NO_NEED_TO_PROMPT;
    }
    if (ctx.oidc.result?.login) {
      return interactionPolicy.Check.NO_NEED_TO_PROMPT;
    }
    return requested.includes(ctx.oidc.session.acr)
      ? interactionPolicy.Check.NO_NEED_TO_PROMPT
      : interactionPolicy.Check.REQUEST_PROMPT;
  },
));

// The acr and auth_time of the authentication a token stems from, for the
// resource server's step-up decisions (RFC 9470 §3, RFC 9068 §2.2.1).
function authenticationClaims(ctx) {
  const source = ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.RefreshToken;
  if (!source) return undefined;
  return { acr: source.acr, auth_time: source.authTime };
}

const provider = new Provider(issuer, {
  // The one static client: the deployment's console, which may revoke
  // any token (RFC 7009 §2.1 lets the server decide who may).
  clients: [{
    client_id: admin.id,
    client_secret: admin.secret,
    grant_types: [],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingKey()] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access'],
  claims: { openid: ['sub'], acr: null, auth_time: null },
  acrValues,
  findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  pkce: { required: () => true },
  rotateRefreshToken: true,
  issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  extraTokenClaims: async (ctx) => authenticationClaims(ctx),
  interactions: { policy, url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  // With dpop, every client must bind its tokens (RFC 9449 §5.2).
  // The provider's own defaults are spelt out: the option replaces them.
  ...(dpop && {
    clientDefaults: {
      grant_types: ['authorization_code'],
      id_token_signed_response_alg: 'RS256',
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      dpop_bound_access_tokens: true,
    },
  }),
  features: {
    // RFC 9449, with a server nonce required in every proof (§8).
    dPoP: dpop
      ? { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true }
      : { enabled: true },
    devInteractions: { enabled: false },
    registration: { enabled: true },
    revocation: {
      enabled: true,
      allowedPolicy: (_ctx, client, token) => client.clientId === admin.id || client.clientId === token.clientId,
    },
    claimsParameter: { enabled: true },
    // The client credentials grant (RFC 6749 §4.4), for clients that act
    // on their own behalf; its tokens carry the resource as audience.
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== resource) {
          throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        }
        return {
          scope: resourceScopes.join(' '),
          audience: resource,
          accessTokenTTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  ttl: { AccessToken: accessTokenTTL },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>error</title><p id="error">${escape(out.error)}: ${escape(out.error_description ?? '')}</p>`;
  },
});

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(res, status, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(`<!DOCTYPE html><meta charset="utf-8">${body}`);
}

async function formBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 << 10) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// The scopes a consent is asked for: those of the OpenID scopes and of each
// resource that the grant has not seen yet.
function scopesAsked(details) {
  const asked = new Set(details.missingOIDCScope ?? []);
  for (const scopes of Object.values(details.missingResourceScopes ?? {})) {
    for (const s of scopes) asked.add(s);
  }
  return [...asked];
}

async function showInteraction(req, res, uid) {
  const it = await provider.interactionDetails(req, res);
  if (it.uid !== uid) return page(res, 400, '<p id="error">interaction mismatch</p>');
  const action = `/interaction/${uid}/${it.prompt.name}`;
  if (it.prompt.name === 'login') {
    return page(res, 200, `<title>Log in</title>
<form method="post" action="${action}" data-prompt="login">
<label>Account <input name="login" value=""></label>
<label>Authentication <select name="acr">${acrValues.map((a) => `<option>${escape(a)}</option>`).join('')}</select></label>
<button>Log in</button></form>`);
  }
  const asked = scopesAsked(it.prompt.details);
  return page(res, 200, `<title>Consent</title>
<form method="post" action="${action}" data-prompt="consent" data-scopes="${escape(asked.join(' '))}">
${asked.map((s) => `<label><input type="checkbox" name="scope" value="${escape(s)}" checked> ${escape(s)}</label>`).join('\n')}
<button name="decision" value="allow">Allow</button>
<button name="decision" value="deny">Deny</button></form>`);
}

async function login(req, res) {
  const form = await formBody(req);
  const account = form.get('login');
  const acr = form.get('acr') || acrValues[0];
  if (!account || !acrValues.includes(acr)) {
    return page(res, 400, '<p id="error">an account and a known acr are needed</p>');
  }
  await provider.interactionFinished(req, res, {
    login: { accountId: account, acr, amr: acr === acrValues[0] ? ['pwd'] : ['pwd', 'otp'] },
  }, { mergeWithLastSubmission: false });
}

async function consent(req, res) {
  const form = await formBody(req);
  const it = await provider.interactionDetails(req, res);
  if (form.get('decision') !== 'allow') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'the person declined the authorization',
    }, { mergeWithLastSubmission: false });
  }
  const allowed = new Set(form.getAll('scope'));
  const { details } = it.prompt;
  const grant = it.grantId
    ? await provider.Grant.find(it.grantId)
    : new provider.Grant({ accountId: it.session.accountId, clientId: it.params.client_id });
  const split = (scopes) => [scopes.filter((s) => allowed.has(s)), scopes.filter((s) => !allowed.has(s))];
  {
    const [add, reject] = split(details.missingOIDCScope ?? []);
    if (add.length) grant.addOIDCScope(add.join(' '));
    if (reject.length) grant.rejectOIDCScope(reject.join(' '));
  }
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
    const [add, reject] = split(scopes);
    if (add.length) grant.addResourceScope(indicator, add.join(' '));
    if (reject.length) grant.rejectResourceScope(indicator, reject.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
const interaction = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|consent))?$/;

const server = http.createServer(async (req, res) => {
  const m = interaction.exec(new URL(req.url, issuer).pathname);
  if (!m) return callback(req, res);
  try {
    if (req.method === 'GET' && !m[2]) return await showInteraction(req, res, m[1]);
    if (req.method === 'POST' && m[2] === 'login') return await login(req, res);
    if (req.method === 'POST' && m[2] === 'consent') return await consent(req, res);
    return page(res, 405, '<p id="error">method not allowed</p>');
  } catch (err) {
    process.stderr.write(`interaction: ${err?.stack ?? err}\n`);
    return page(res, 400, `<p id="error">${escape(err?.message ?? err)}</p>`);
  }
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  process.stdout.write(`${JSON.stringify({ listening: `http://127.0.0.1:${port}` })}\n`);
});

// The Go side closes stdin when the test ends: stop then, whatever else.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
