"""The response-conformance check: every answer the e2e suite recorded
(harness.Recorder) against openapi.yaml, its status, its headers and its
body.

For each answer: the path item whose template matches the request path
(a path parameter is one non-empty segment, or, when its description says
it is everything after the prefix, the rest of the path, `/` included);
the operation of the method (HEAD is the GET operation, as openapi.yaml's
"Methods" rule says); the response of the status (exact, then `4XX`, then
`default`). A path that matches no template must be components/responses/
NotFound, a method the path does not take components/responses/
MethodNotAllowed (with an `Allow` listing the path's methods), except the
answers made before routing on any path (400, 413, 414, 431, 500, 501,
505: the components named in BEFORE_ROUTING). Then:

- headers: every X-Rollcall-* header, and Allow, ETag, WWW-Authenticate,
  Retry-After and Cache-Control when present, must be listed by the
  response, and its value must fit the header's schema; a listed header
  with `required: true` must be there;
- Content-Type must match one of the response's media types (parameters
  such as charset ignored); a response without `content` has no body;
- an application/json body must be JSON that validates against the
  schema (the JSON Schema subset openapi.yaml uses: type, nullable,
  properties, required, additionalProperties, items, enum, const,
  minimum/maximum, minLength/maxLength, minItems/maxItems, pattern, oneOf,
  anyOf, allOf; format is ignored), and every object member must be named
  by a schema in effect (a member no schema documents is a failure unless
  additionalProperties allows it, or the schema names no member at all);
- event streams, the metrics' text, the dashboard's files: status,
  headers and content type only (HEAD: no body to check either).

Python standard library plus PyYAML."""

import json
import re
import time

import yaml

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# What a request can get before its route and method are looked at, on any
# path and with any method (openapi.yaml's "Framing" and "Body size" rules,
# "Order of checks"): the response component each status is checked against
# when the path has no such operation.
BEFORE_ROUTING = {400: "BadRequest", 413: "BodyTooLarge", 414: "UriTooLong", 431: "HeaderTooLarge",
                  500: "InternalError", 501: "NotImplemented", 505: "HttpVersionNotSupported"}
# Headers that must be documented on the response that carries them.
API_HEADERS = {"allow", "etag", "www-authenticate", "retry-after", "cache-control"}
GREEDY = re.compile(r"everything after|slashes included|`/` included", re.I)
MAX_ERRORS = 4  # per answer


class SpecError(Exception):
    pass


def load(path):
    with open(path, encoding="utf-8") as f:
        return Spec(yaml.safe_load(f))


class Spec:
    def __init__(self, doc):
        if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
            raise SpecError("openapi.yaml has no paths")
        self.doc = doc
        self.routes = []  # (literal?, -specificity, template, regex, item)
        for tmpl, item in doc["paths"].items():
            item = self.resolve(item)
            self.routes.append(self._route(tmpl, item))
        self.routes.sort(key=lambda r: r[:2])

    # ---- references

    def resolve(self, node, seen=()):
        """node with its $ref followed (repeatedly); other members of a
        node that has $ref are ignored, as OpenAPI 3.0 says."""
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                raise SpecError(f"unsupported $ref {ref!r}")
            if ref in seen:
                raise SpecError(f"$ref loop at {ref}")
            seen = seen + (ref,)
            node = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(node, dict) or part not in node:
                    raise SpecError(f"$ref {ref} points at nothing")
                node = node[part]
        return node

    def component(self, kind, name):
        node = self.doc.get("components", {}).get(kind, {}).get(name)
        if node is None:
            raise SpecError(f"components/{kind}/{name} is missing")
        return self.resolve(node)

    # ---- paths

    def _path_params(self, item):
        params = {}
        for holder in [item] + [item[m] for m in METHODS if isinstance(item.get(m), dict)]:
            for p in holder.get("parameters", []) or []:
                p = self.resolve(p)
                if p.get("in") == "path":
                    params.setdefault(p.get("name"), p)
        return params

    def _route(self, tmpl, item):
        params = self._path_params(item)
        names = re.findall(r"\{([^}/]+)\}", tmpl)
        if not names:
            return (0, -len(tmpl), tmpl, None, item)
        rx, pos, greedy = "", 0, False
        for m in re.finditer(r"\{([^}/]+)\}", tmpl):
            rx += re.escape(tmpl[pos:m.start()])
            desc = (params.get(m.group(1)) or {}).get("description", "") or ""
            if m.end() == len(tmpl) and GREEDY.search(desc):
                rx += "(.*)"  # the rest, `/` included; empty is the route's own 400
                greedy = True
            else:
                rx += "([^/]+)"
            pos = m.end()
        rx += re.escape(tmpl[pos:])
        literal = len(re.sub(r"\{[^}/]+\}", "", tmpl))
        return (1 + greedy, -literal, tmpl, re.compile(rx), item)

    def match(self, path):
        """(template, path item) of the request path, or (None, None)."""
        for _lit, _spec, tmpl, rx, item in self.routes:
            if (rx is None and path == tmpl) or (rx is not None and rx.fullmatch(path)):
                return tmpl, item
        return None, None

    def path_key(self, method, path):
        """The route an answer belongs to, for harness.Recorder."""
        tmpl, _ = self.match(path)
        return tmpl or "(no route)"

    # ---- one answer

    def check(self, a):
        """(the template a's path matched, or "(no route)"; the failures of
        answer a, a harness.Answer, as sentences)."""
        tmpl, item = self.match(a.path)
        method = a.method.upper()
        where = tmpl or "(no route)"
        if item is None:
            if a.status in BEFORE_ROUTING:
                return where, self._before_routing(a)
            if a.status != 404:
                return where, [f"no path template matches, so the answer must be 404 (NotFound), not {a.status}"]
            return where, self._check_response(a, self.component("responses", "NotFound"), "NotFound",
                                               method == "HEAD")
        op = item.get(method.lower())
        head = False
        if op is None and method == "HEAD" and isinstance(item.get("get"), dict):
            op, head = item["get"], True
        if not isinstance(op, dict):
            allowed = [m.upper() for m in METHODS if isinstance(item.get(m), dict)]
            if "GET" in allowed and "HEAD" not in allowed:
                allowed.insert(allowed.index("GET") + 1, "HEAD")
            if a.status in BEFORE_ROUTING:
                return where, self._before_routing(a)
            if a.status != 405:
                return where, [f"{method} is not an operation of {tmpl} ({', '.join(allowed)}), "
                               f"so the answer must be 405 (MethodNotAllowed), not {a.status}"]
            errs = self._check_response(a, self.component("responses", "MethodNotAllowed"),
                                        "MethodNotAllowed", method == "HEAD")
            got = header(a, "Allow")
            if got is not None:
                got_set = {m.strip().upper() for m in got.split(",") if m.strip()}
                if got_set != set(allowed):
                    errs.append(f"Allow is {got!r}; the path's operations are {', '.join(allowed)}")
            return where, errs
        resp, name = self._response(op, a.status)
        if resp is None:
            return where, [f"status {a.status} is not documented on {method if not head else 'GET (for HEAD)'} {tmpl}"]
        return where, self._check_response(a, resp, name, head or method == "HEAD")

    def _before_routing(self, a):
        name = BEFORE_ROUTING[a.status]
        return self._check_response(a, self.component("responses", name), name, a.method.upper() == "HEAD")

    def _response(self, op, status):
        responses = op.get("responses") or {}
        for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
            for k, v in responses.items():
                if str(k) == key:
                    return self.resolve(v), f"responses/{key}"
        return None, None

    def _check_response(self, a, resp, name, head):
        errs = []
        # headers
        listed = {}  # lower-case name: (name as listed, header object)
        for hname, h in (resp.get("headers") or {}).items():
            listed[hname.lower()] = (hname, self.resolve(h))
        for hname, value in a.headers:
            low = hname.lower()
            if not (low.startswith("x-rollcall-") or low in API_HEADERS):
                continue
            if low not in listed:
                errs.append(f"header {hname} is not listed in {name}")
                continue
            schema = listed[low][1].get("schema")
            if schema is not None:
                for e in self.header_errors(value, schema):
                    errs.append(f"header {hname}: {e}")
        present = {k.lower() for k, _ in a.headers}
        for low, (hname, h) in listed.items():
            if h.get("required") is True and low not in present and low != "content-type":
                errs.append(f"header {hname} is missing; {name} requires it")
        # content type and body
        content = resp.get("content") or {}
        ct = header(a, "Content-Type")
        if not content:
            if a.body:
                errs.append(f"{name} has no content, but the answer has a {len(a.body)}-byte body")
            return errs
        if ct is None:
            errs.append(f"no Content-Type; {name} gives {', '.join(content)}")
            return errs
        base = media_base(ct)
        media = None
        for k, v in content.items():
            if media_match(media_base(k), base):
                media = (k, v)
                break
        if media is None:
            errs.append(f"Content-Type {ct!r} is none of {name}'s: {', '.join(content)}")
            return errs
        if head or base == "text/event-stream" or (a.event_stream and base != "application/json"):
            return errs  # no body, or a stream: status, headers and type only
        if not (base == "application/json" or base.endswith("+json")):
            return errs
        schema = (self.resolve(media[1]) or {}).get("schema")
        if schema is None:
            return errs
        try:
            doc = json.loads(a.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            errs.append(f"body is not JSON ({e}): {a.body[:80]!r}")
            return errs
        v = Validator(self)
        v.validate(doc, schema, "$")
        if not v.errors:
            v.documented(doc, schema, "$")
        errs.extend(f"body {e}" for e in v.errors[:MAX_ERRORS])
        return errs

    def header_errors(self, value, schema):
        schema = self.resolve(schema)
        v = Validator(self)
        types = type_list(schema)
        inst = value.strip()
        if types and set(types) <= {"integer", "number"}:
            if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", inst):
                return [f"{value!r} is not a number"]
            inst = int(inst) if re.fullmatch(r"-?[0-9]+", inst) else float(inst)
        v.validate(inst, schema, "value")
        return v.errors


def header(a, name):
    low = name.lower()
    return next((v for k, v in a.headers if k.lower() == low), None)


def media_base(ct):
    return ct.split(";", 1)[0].strip().lower()


def media_match(pattern, base):
    if pattern in ("*/*", base):
        return True
    if pattern.endswith("/*"):
        return base.split("/", 1)[0] == pattern[:-2]
    return False


def type_list(schema):
    t = schema.get("type")
    if t is None:
        return []
    return list(t) if isinstance(t, list) else [t]


def json_type_ok(inst, t):
    if t == "null":
        return inst is None
    if t == "boolean":
        return isinstance(inst, bool)
    if t == "integer":
        return (isinstance(inst, int) and not isinstance(inst, bool)) or \
            (isinstance(inst, float) and inst.is_integer())
    if t == "number":
        return isinstance(inst, (int, float)) and not isinstance(inst, bool)
    if t == "string":
        return isinstance(inst, str)
    if t == "array":
        return isinstance(inst, list)
    if t == "object":
        return isinstance(inst, dict)
    return False


def short(v, n=60):
    s = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else repr(v)
    return s if len(s) <= n else s[:n] + "..."


class Validator:
    """The JSON Schema subset openapi.yaml uses. Errors are "<JSON path>:
    <why>" sentences, in self.errors."""

    def __init__(self, spec):
        self.spec = spec
        self.errors = []
        self._patterns = {}

    def ok(self, inst, schema, path="$"):
        sub = Validator(self.spec)
        sub._patterns = self._patterns
        sub.validate(inst, schema, path)
        return not sub.errors, sub.errors

    def fail(self, path, why):
        self.errors.append(f"{path}: {why}")

    def validate(self, inst, schema, path):
        if len(self.errors) > 20:
            return
        if schema is True or schema is None:
            return
        if schema is False:
            self.fail(path, "no value is allowed here")
            return
        schema = self.spec.resolve(schema)
        if not isinstance(schema, dict):
            return
        types = type_list(schema)
        if inst is None and (schema.get("nullable") is True or "null" in types):
            return
        if types and not any(json_type_ok(inst, t) for t in types):
            want = "/".join(types) + (" or null" if schema.get("nullable") is True else "")
            self.fail(path, f"{short(inst)} is not {want}")
            return
        if "const" in schema and inst != schema["const"]:
            self.fail(path, f"{short(inst)} is not {short(schema['const'])}")
        if "enum" in schema and not any(inst == e and type(inst) is type(e) or
                                        (isinstance(inst, (int, float)) and not isinstance(inst, bool) and
                                         isinstance(e, (int, float)) and inst == e)
                                        for e in schema["enum"]):
            self.fail(path, f"{short(inst)} is not one of the enum {short(schema['enum'], 120)}")
        if isinstance(inst, (int, float)) and not isinstance(inst, bool):
            if "minimum" in schema and inst < schema["minimum"]:
                self.fail(path, f"{inst} is below the minimum {schema['minimum']}")
            if "maximum" in schema and inst > schema["maximum"]:
                self.fail(path, f"{inst} is over the maximum {schema['maximum']}")
            if schema.get("exclusiveMinimum") is not None and not isinstance(schema["exclusiveMinimum"], bool) \
                    and inst <= schema["exclusiveMinimum"]:
                self.fail(path, f"{inst} is not over {schema['exclusiveMinimum']}")
            if schema.get("exclusiveMaximum") is not None and not isinstance(schema["exclusiveMaximum"], bool) \
                    and inst >= schema["exclusiveMaximum"]:
                self.fail(path, f"{inst} is not under {schema['exclusiveMaximum']}")
        if isinstance(inst, str):
            n = len(inst)
            if "minLength" in schema and n < schema["minLength"]:
                self.fail(path, f"{short(inst)} is shorter than {schema['minLength']}")
            if "maxLength" in schema and n > schema["maxLength"]:
                self.fail(path, f"{short(inst)} is longer than {schema['maxLength']}")
            if "pattern" in schema:
                rx = self._patterns.get(schema["pattern"])
                if rx is None:
                    rx = self._patterns[schema["pattern"]] = re.compile(schema["pattern"])
                if not rx.search(inst):
                    self.fail(path, f"{short(inst)} does not match {schema['pattern']}")
        if isinstance(inst, list):
            if "minItems" in schema and len(inst) < schema["minItems"]:
                self.fail(path, f"{len(inst)} items, fewer than {schema['minItems']}")
            if "maxItems" in schema and len(inst) > schema["maxItems"]:
                self.fail(path, f"{len(inst)} items, more than {schema['maxItems']}")
            if "items" in schema:
                for i, x in enumerate(inst):
                    self.validate(x, schema["items"], f"{path}[{i}]")
        if isinstance(inst, dict):
            for k in schema.get("required", []) or []:
                if k not in inst:
                    self.fail(path, f"required member {k!r} is missing")
            props = schema.get("properties") or {}
            for k, x in inst.items():
                if k in props:
                    self.validate(x, props[k], f"{path}.{k}")
                elif "additionalProperties" in schema:
                    ap = schema["additionalProperties"]
                    if ap is False:
                        self.fail(path, f"member {k!r} is not allowed (additionalProperties: false)")
                    elif isinstance(ap, dict):
                        self.validate(x, ap, f"{path}.{k}")
        for sub in schema.get("allOf", []) or []:
            self.validate(inst, sub, path)
        if "anyOf" in schema:
            results = [self.ok(inst, s, path) for s in schema["anyOf"]]
            if not any(r[0] for r in results):
                self.fail(path, "matches none of anyOf: " + " | ".join(r[1][0] for r in results))
        if "oneOf" in schema:
            results = [self.ok(inst, s, path) for s in schema["oneOf"]]
            n = sum(1 for r in results if r[0])
            if n == 0:
                self.fail(path, "matches none of oneOf: " + " | ".join(r[1][0] for r in results))
            elif n > 1:
                self.fail(path, f"matches {n} branches of oneOf, not exactly one")

    def _in_effect(self, inst, schema):
        """The schemas that apply to inst: schema, its allOf, and the
        oneOf/anyOf branches inst validates against, recursively."""
        out, todo = [], [schema]
        while todo:
            s = self.spec.resolve(todo.pop())
            if not isinstance(s, dict):
                continue
            out.append(s)
            todo.extend(s.get("allOf", []) or [])
            for key in ("oneOf", "anyOf"):
                todo.extend(b for b in s.get(key, []) or [] if self.ok(inst, b)[0])
        return out

    def documented(self, inst, schema, path):
        """Every object member named by a schema in effect (the body
        already validates)."""
        if len(self.errors) > 20 or not isinstance(inst, (dict, list)):
            return
        eff = self._in_effect(inst, schema)
        if isinstance(inst, list):
            for s in eff:
                if "items" in s:
                    for i, x in enumerate(inst):
                        self.documented(x, s["items"], f"{path}[{i}]")
            return
        named, extra, declared, open_ = {}, [], False, False
        for s in eff:
            if "properties" in s:
                declared = True
                for k, sub in (s["properties"] or {}).items():
                    named.setdefault(k, []).append(sub)
            ap = s.get("additionalProperties")
            if ap is True or isinstance(ap, dict):
                open_ = True
                if isinstance(ap, dict):
                    extra.append(ap)
        for k, x in inst.items():
            subs = named.get(k) or extra
            if not subs and declared and not open_:
                self.fail(f"{path}.{k}", "member not documented by the schema")
            for sub in subs:
                self.documented(x, sub, f"{path}.{k}")


_GIST = re.compile(r"\[\d+\]|'[^']*'|\"[^\"]*\"|-?\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\b")


def check_answers(spec, answers, deadline=None, limit=20):
    """Checks every answer; returns (answers checked, distinct failures,
    the first `limit` of them as lines, finished before the deadline)."""
    distinct = {}
    checked = 0
    for a in answers:
        if deadline is not None and time.monotonic() > deadline:
            return checked, len(distinct), list(distinct.values())[:limit], False
        checked += 1
        try:
            where, errs = spec.check(a)
        except Exception as e:  # noqa: BLE001 - a spec the check cannot read is a failure to show
            where, errs = "?", [f"the check itself failed: {type(e).__name__}: {e}"]
        for e in errs:
            key = (a.method.upper(), where, a.status, _GIST.sub("*", e))  # one line per kind of failure
            if key not in distinct:
                path = a.path if len(a.path) <= 60 else a.path[:60] + "..."
                distinct[key] = f"{a.method.upper()} {path} [{where}] -> {a.status}: {e}"
    return checked, len(distinct), list(distinct.values())[:limit], True
