// Preloaded into the conformance suite (node --import): the suite has no option to send a
// bearer token, and a gateway refuses calls without one. This adds
// `Authorization: Bearer $REMIT_CONFORMANCE_TOKEN` to every HTTP request to
// $REMIT_CONFORMANCE_ORIGIN, made through undici (Node's fetch and undici.request share the
// global dispatcher) or node:http (the suite's raw-header probes), and changes nothing else:
// Host, Origin and the body go as the suite wrote them, so the gateway sees exactly what a
// client with a token would send.
import http from "node:http";
import { createRequire, syncBuiltinESMExports } from "node:module";
import path from "node:path";

const token = process.env.REMIT_CONFORMANCE_TOKEN;
const origin = process.env.REMIT_CONFORMANCE_ORIGIN;
if (token && origin) {
  const require = createRequire(path.join(process.env.REMIT_NODE_TOOLS, "package.json"));
  const { Agent, setGlobalDispatcher } = require("undici");
  const withToken = (headers) => {
    const value = `Bearer ${token}`;
    if (headers == null) return { authorization: value };
    if (Array.isArray(headers)) return [...headers, "authorization", value];
    if (typeof headers[Symbol.iterator] === "function") {
      return [...[...headers].flat(), "authorization", value];
    }
    return { ...headers, authorization: value };
  };
  const agent = new Agent().compose((dispatch) => (opts, handler) => {
    const target = typeof opts.origin === "string" ? opts.origin : String(opts.origin);
    if (new URL(target).origin !== origin) return dispatch(opts, handler);
    return dispatch({ ...opts, headers: withToken(opts.headers) }, handler);
  });
  setGlobalDispatcher(agent);

  const request = http.request;
  http.request = function (options, ...rest) {
    if (options && typeof options === "object" && !(options instanceof URL)) {
      const host = options.hostname ?? options.host ?? "localhost";
      const target = `${options.protocol ?? "http:"}//${host}:${options.port ?? 80}`;
      if (new URL(target).origin === origin) {
        options = { ...options, headers: withToken(options.headers) };
      }
    }
    return request.call(this, options, ...rest);
  };
  syncBuiltinESMExports();
}
