// Baseline for the edge numbers: the thinnest possible Worker under the same
// `wrangler dev`, in front of the same origin. It forwards every request to
// env.UPSTREAM with the edge secret (env.EDGE_SECRET, when set), streams a
// request body (a push) on with its Content-Length and the answer's body back, and writes one JSON request-log line per request, as the eris
// edge does — so what the eris edge loses against it is its own work (auth,
// KV, path checks, header filtering), not wrangler dev's or the log's.
export default {
  async fetch(request, env) {
    const started = Date.now();
    const url = new URL(request.url);
    const headers = env.EDGE_SECRET ? { 'x-eris-edge-secret': env.EDGE_SECRET } : {};
    for (const name of ['content-type', 'content-length']) if (request.headers.has(name)) headers[name] = request.headers.get(name);
    const res = await fetch(env.UPSTREAM + url.pathname + url.search, { method: request.method, headers, body: request.body, cache: 'no-store' });
    const length = res.headers.get('content-length');
    console.log(JSON.stringify({ method: request.method, path: url.pathname, status: res.status, user: null, ms: Date.now() - started, bytes: length ? Number(length) : null }));
    return new Response(res.body, { status: res.status, headers: res.headers });
  },
};
