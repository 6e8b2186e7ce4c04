// Drives one OpenID Connect login over plain HTTP without a browser, for caplens' integration
// tests, against provider.mjs (oidc-provider's built-in dev login and consent pages).
//
//   node drive-login.mjs [--no-follow-callback] [--password PW] [--verbose] \
//        START_URL USERNAME [COOKIE]
//
//   START_URL  caplens' URL that redirects to the provider, e.g. http://127.0.0.1:PORT/auth/oidc/start
//   USERNAME   typed into the provider's login form (see provider.mjs for the known accounts)
//   COOKIE     optional `name=value; name2=value2` sent to caplens (e.g. an existing session)
//
// Redirects are followed by hand, like a browser: one cookie jar per host name (cookies ignore
// ports, so caplens and the provider on 127.0.0.1 share one, as in a browser; Path is honoured,
// Domain and Secure are not). HTML answers are the provider's forms: their action and inputs are
// parsed, the login form gets USERNAME and a password, the consent form is submitted as is.
// The first redirect that leads back to START_URL's origin after the provider was visited is
// caplens' callback. Then, by default, the callback is requested with the jar's cookies and one
// JSON line is printed:
//   {"callback_status":303,"location":"/","set_cookie":["..."],"cookie":"a=b; c=d",
//    "callback_url":"http://..."}
// (`location` is null when the callback didn't redirect; `cookie` is the Cookie header the jar
// now holds for caplens, handy for the test's next request.)
// With --no-follow-callback it prints {"callback_url":"http://...","cookie":"..."} instead, so a
// test can tamper with code/state and call the callback itself.
// Exit status 0 on either; 1 (with a JSON line {"error":...} on stdout) when the flow went
// elsewhere (provider error page, too many hops, ...); 2 for bad arguments.

const args = process.argv.slice(2);
const flags = { follow: true, password: 'any-password', verbose: false };
const positional = [];
for (let i = 0; i < args.length; i += 1) {
  if (args[i] === '--no-follow-callback') flags.follow = false;
  else if (args[i] === '--verbose') flags.verbose = true;
  else if (args[i] === '--password') flags.password = args[(i += 1)];
  else positional.push(args[i]);
}
const [startUrl, username, cookieArg] = positional;
if (!startUrl || !username) {
  console.error('usage: node drive-login.mjs [--no-follow-callback] [--password PW] [--verbose] START_URL USERNAME [COOKIE]');
  process.exit(2);
}
const log = (...m) => { if (flags.verbose) console.error('drive-login:', ...m); };

function fail(message, extra = {}) {
  process.stdout.write(`${JSON.stringify({ error: message, ...extra })}\n`);
  process.exit(1);
}

// ---- cookie jar: hostname -> Map(name -> {value, path}) -------------------------------------
const jars = new Map();
const jarFor = (url) => {
  if (!jars.has(url.hostname)) jars.set(url.hostname, new Map());
  return jars.get(url.hostname);
};
function storeCookies(url, setCookies) {
  const jar = jarFor(url);
  for (const line of setCookies) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    // RFC 6265 default-path: the request path up to (not including) its last '/'.
    let path = url.pathname.lastIndexOf('/') > 0 ? url.pathname.slice(0, url.pathname.lastIndexOf('/')) : '/';
    let expired = false;
    for (const attr of attrs) {
      const [k, ...v] = attr.split('=');
      const key = k.trim().toLowerCase();
      const val = v.join('=').trim();
      if (key === 'path' && val.startsWith('/')) path = val;
      if (key === 'max-age' && Number(val) <= 0) expired = true;
      if (key === 'expires' && Date.parse(val) <= Date.now()) expired = true;
    }
    const id = `${name}\u0000${path}`;
    if (expired) jar.delete(id);
    else jar.set(id, { name, value, path });
  }
}
function cookieHeader(url) {
  const matches = (cookiePath) => url.pathname === cookiePath
    || (url.pathname.startsWith(cookiePath) && (cookiePath.endsWith('/') || url.pathname[cookiePath.length] === '/'));
  return [...jarFor(url).values()]
    .filter((c) => matches(c.path))
    .sort((a, b) => b.path.length - a.path.length) // longer paths first, as browsers do
    .map((c) => `${c.name}=${c.value}`)
    .join('; ');
}

const start = new URL(startUrl);
if (cookieArg) {
  storeCookies(new URL('/', start), cookieArg.split(';').map((c) => `${c.trim()}; Path=/`).filter((c) => c.includes('=')));
}

async function request(url, { method = 'GET', form } = {}) {
  const headers = { accept: 'text/html,application/json;q=0.9,*/*;q=0.8' };
  const cookie = cookieHeader(url);
  if (cookie) headers.cookie = cookie;
  let body;
  if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  log(method, url.href, cookie ? `(cookie: ${cookie})` : '');
  let res;
  try {
    res = await fetch(url, { method, headers, body, redirect: 'manual' });
  } catch (e) {
    // Note: Node's fetch refuses the Fetch spec's "bad ports" (e.g. 1, 6000, 6665-6669, 10080).
    fail(`${method} ${url.href} failed: ${e.cause?.message ?? e.message}`, { url: url.href });
  }
  const setCookie = res.headers.getSetCookie();
  storeCookies(url, setCookie);
  log('->', res.status, res.headers.get('location') ?? '');
  return { res, setCookie };
}

// ---- HTML form parsing (enough for oidc-provider's dev views) -------------------------------
const decode = (s) => s
  .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
  .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
  .replace(/&quot;/g, '"').replace(/&#39;|&apos;/g, "'")
  .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
const attr = (tag, name) => {
  const m = tag.match(new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i'));
  return m ? decode(m[1] ?? m[2] ?? m[3]) : undefined;
};
function parseForm(html, baseUrl) {
  const form = html.match(/<form\b([^>]*)>([\s\S]*?)<\/form>/i);
  if (!form) return undefined;
  const fields = {};
  for (const [input] of form[2].matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(input, 'name');
    if (name) fields[name] = { type: (attr(input, 'type') || 'text').toLowerCase(), value: attr(input, 'value') ?? '' };
  }
  return {
    action: new URL(attr(`<form${form[1]}>`, 'action') || baseUrl.href, baseUrl),
    method: (attr(`<form${form[1]}>`, 'method') || 'get').toUpperCase(),
    fields,
  };
}

// ---- the walk --------------------------------------------------------------------------------
let url = start;
let next = { method: 'GET' };
let leftCaplens = false;
for (let hop = 0; hop < 25; hop += 1) {
  const { res } = await request(url, next);
  if (res.status >= 300 && res.status < 400) {
    const location = res.headers.get('location');
    if (!location) fail(`redirect ${res.status} without Location`, { url: url.href });
    const target = new URL(location, url);
    if (leftCaplens && target.origin === start.origin) {
      // Back at caplens: this is its callback.
      if (!flags.follow) {
        process.stdout.write(`${JSON.stringify({ callback_url: target.href, cookie: cookieHeader(target) })}\n`);
        process.exit(0);
      }
      const { res: cb, setCookie } = await request(target);
      process.stdout.write(`${JSON.stringify({
        callback_status: cb.status,
        location: cb.headers.get('location'),
        set_cookie: setCookie,
        cookie: cookieHeader(new URL('/', start)),
        callback_url: target.href,
      })}\n`);
      process.exit(0);
    }
    if (target.origin !== start.origin) leftCaplens = true;
    url = target;
    next = { method: 'GET' };
    continue;
  }

  const body = await res.text();
  const form = res.status === 200 && url.origin !== start.origin ? parseForm(body, url) : undefined;
  if (!form) {
    fail(`unexpected ${res.status} at ${url.href}`, { status: res.status, body: body.slice(0, 2000) });
  }
  const values = {};
  for (const [name, { type, value }] of Object.entries(form.fields)) {
    if (name === 'login') values[name] = username;
    else if (type === 'password') values[name] = flags.password;
    else values[name] = value;
  }
  log('form', form.method, form.action.href, JSON.stringify(values));
  if (form.method === 'GET') {
    const target = new URL(form.action);
    for (const [k, v] of Object.entries(values)) target.searchParams.set(k, v);
    url = target;
    next = { method: 'GET' };
  } else {
    url = form.action;
    next = { method: 'POST', form: values };
  }
}
fail('too many hops', { url: url.href });
