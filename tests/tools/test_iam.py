"""IAM proven from the code, not assumed: for each function, the DynamoDB, SQS and Secrets Manager
actions its code can call are extracted from the Rust sources it links, and compared with the role
template.yaml gives it, both ways (nothing missing, nothing unused).

The emulator does not enforce IAM, so a missing grant fails only on AWS (a lease release calling
DeleteItem under a role without it). This test is the check that runs everywhere.

How the actions are found: every `fn` of the workspace crates a function links (non-test code) is
indexed; from the function crate's own entry points (its `main.rs` / `bin/*.rs` and `lib.rs`),
calls are followed by name through that index; every AWS SDK operation (`.put_item()`,
`.query()` with its `.index_name("gsiN")`, `.send_message()`, ...) in a reachable body is an
action the function can call. Following calls by name over-approximates (two methods with one name
are both followed), never under-approximates, so "missing" is always real; an "unused" grant means
either the code cannot reach it or a name clash made it look reachable.
"""
import os
import re
import tomllib

import pytest

import test_template as tt

ROOT = tt.ROOT

SDK_ACTIONS = {
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "batch_get_item": "dynamodb:BatchGetItem",
    "transact_write_items": "dynamodb:TransactWriteItems",
    "transact_get_items": "dynamodb:TransactGetItems",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "send_message": "sqs:SendMessage",
    "send_message_batch": "sqs:SendMessage",  # IAM has no SendMessageBatch action
    "receive_message": "sqs:ReceiveMessage",
    "delete_message": "sqs:DeleteMessage",
    "delete_message_batch": "sqs:DeleteMessage",
    "change_message_visibility": "sqs:ChangeMessageVisibility",
    "get_secret_value": "secretsmanager:GetSecretValue",
}
# The secret is read through the Parameters and Secrets Lambda Extension, over HTTP: the call is
# this path, and the extension uses the function's role for secretsmanager:GetSecretValue.
EXTENSION_PATH = "/secretsmanager/get"
# What an SQS event source mapping does with the function's role (not the function's code).
EVENT_SOURCE = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}

FN_RE = re.compile(r"\bfn\s+(\w+)\s*(?:<[^{;]*?>)?\s*\(([^)]*)\)")
# A call and whether it passes arguments: `.send()` (the SDK's) is not `queue.send(msg)` (ours).
CALL_RE = re.compile(r"(self\.|Self::|[A-Z]\w*::)?\b(\w+)\s*(?:::<[^>]*>)?\s*\((\s*\))?")
DYNAMIC_INDEX_RE = re.compile(r"\.index_name\(\s*([a-z_]\w*)\s*\)")
# An SDK operation is a builder: `.put_item()` followed by `.table_name(…)` and the like (which
# tells `client.query()` from `uri.query();`).
SDK_RE = re.compile(r"\.(" + "|".join(sorted(SDK_ACTIONS, key=len, reverse=True)) + r")\(\)\s*\.(?!await)\w+\(")
# Names of std methods that dropsync's own fns also use: a call `x.push(…)` is Vec's, so these are
# followed only when called on `self`/`Self`.
STD_NAMES = {"push", "insert", "get", "remove", "extend", "contains", "new", "from", "into", "default",
             "clone", "map", "next", "parse", "len", "send", "load", "run", "handle", "call", "take"}
INDEX_RE = re.compile(r"\.index_name\(\s*\"(\w+)\"\s*\)")
# A fn passed as a value (`Deferred::from_graph(config, Api::from_graph)`): it runs later, so it
# is followed like a call.
FN_REF_RE = re.compile(r"\b[A-Z]\w*::([a-z_]\w*)\b(?!\s*(?:\(|::|<|!))")


# A test-only module declared by file (`#[cfg(test)] mod service_tests;`, with `#[path]` or not).
TEST_MOD_DECL_RE = re.compile(r"#\[cfg\((?:any\()?test\b[^\]]*\]\s*(?:#\[path\s*=\s*\"([^\"]+)\"\]\s*)?"
                              r"(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;")


def strip_tests(text):
    """Non-test code of a file: test-only module declarations dropped, then everything before
    the first `#[cfg(test)]` (the inline test module, last in the file), comments removed."""
    text = TEST_MOD_DECL_RE.sub("", text).split("#[cfg(test)]")[0]
    # `//` after `:` or `"` is a URL in a string (`http://…`), not a comment.
    return re.sub(r"(?<![:\"])//[^\n]*", "", text)


def crate_dir(name):
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        deps = tomllib.load(f)["workspace"]["dependencies"]
    return os.path.join(ROOT, deps[name]["path"])


def linked_crates(path, seen=None):
    """The workspace crates `path`'s crate links (itself included), transitively."""
    seen = seen if seen is not None else set()
    if path in seen:
        return seen
    seen.add(path)
    with open(os.path.join(path, "Cargo.toml"), "rb") as f:
        deps = tomllib.load(f).get("dependencies", {})
    for name in deps:
        if name.startswith("dropsync-"):
            linked_crates(crate_dir(name), seen)
    return seen


def files_only_tests_compile(src):
    """The files of `src` that only tests compile: those its modules declare under `cfg(test)`
    (or `cfg(any(test, …))`)."""
    out = set()
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            full = os.path.join(dirpath, f)
            with open(full) as fh:
                text = fh.read()
            # A module's children live beside lib.rs/main.rs/mod.rs, else in a folder named after it.
            base = dirpath if f in ("lib.rs", "main.rs", "mod.rs") else os.path.join(dirpath, f[:-3])
            for path_attr, name in TEST_MOD_DECL_RE.findall(text):
                if path_attr:
                    out.add(os.path.normpath(os.path.join(dirpath, path_attr)))
                else:
                    out |= {os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")}
    return out


def rust_files(path, exclude=()):
    src = os.path.join(path, "src")
    tests_only = files_only_tests_compile(src)
    for dirpath, _, files in os.walk(src):
        for f in files:
            full = os.path.join(dirpath, f)
            if f.endswith(".rs") and full not in exclude and full not in tests_only:
                yield full


def takes_arguments(params):
    """Whether a fn's parameter list has parameters besides `self`."""
    rest = [p for p in params.split(",") if p.strip() and not re.fullmatch(r"\s*(&\s*)?(mut\s+)?(&\s*'?\w*\s*)?(mut\s+)?self\s*", p)]
    return bool(rest)


def index_fns(files):
    """(name, takes arguments) -> [(file, body text)] for every fn in `files` (a body runs to the
    next fn)."""
    fns = {}
    for path in files:
        with open(path) as f:
            text = strip_tests(f.read())
        starts = [(m.start(), m.group(1), takes_arguments(m.group(2))) for m in FN_RE.finditer(text)]
        for i, (start, name, args) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
            fns.setdefault((name, args), []).append((path, text[start:end]))
    return fns


def crate_of(path):
    return path.split(os.sep + "src" + os.sep)[0]


_TEXTS = {}


def inherent_impl_of(type_name, path):
    """Whether the file at `path` has an inherent `impl Type { … }` (not `impl Trait for Type`)."""
    if path not in _TEXTS:
        with open(path) as f:
            _TEXTS[path] = f.read()
    return re.search(r"\bimpl(?:<[^{]*?>)?\s+" + re.escape(type_name) + r"\s*(?:<[^{]*?>)?\s*(?:where[^{]*)?\{",
                     _TEXTS[path]) is not None


def candidates(defs, caller_file, on_self, qualifier=""):
    """The definitions a call may reach: `Type::f(…)` reaches the `f`s of files with an inherent
    `impl Type` when there are any (a port's `Store::f(self, …)` delegating to the store's own
    `f`); a method called on `self` is the caller's own file's when it defines one (else its
    crate's, else any); other calls reach the caller's crate's definitions when it has some,
    else any."""
    type_name = qualifier.removesuffix("::")
    if type_name and type_name != "Self":
        typed = [d for d in defs if inherent_impl_of(type_name, d[0])]
        if typed:
            return typed
    if on_self:
        same = [d for d in defs if d[0] == caller_file]
        if same:
            return same
    same_crate = [d for d in defs if crate_of(d[0]) == crate_of(caller_file)]
    return same_crate or defs


def actions_of(name, body):
    """(resource, action) pairs one body can call, and the fns whose index is a parameter."""
    out, dynamic = set(), set()
    indexes = INDEX_RE.findall(body)
    for op in SDK_RE.findall(body):
        action = SDK_ACTIONS[op]
        if action == "dynamodb:Query" and DYNAMIC_INDEX_RE.search(body):
            dynamic.add(name)
        elif action == "dynamodb:Query" and indexes:
            out |= {(f"OrdersTable/index/{i}", action) for i in indexes}
        elif action.startswith("dynamodb:"):
            out.add(("OrdersTable", action))
        elif action.startswith("sqs:"):
            out.add(("queue", action))
        else:
            out.add(("secret", action))
    if EXTENSION_PATH in body:
        out.add(("secret", "secretsmanager:GetSecretValue"))
    return out, dynamic


def own_trait_call(name, body):
    """`queue.send(msg)` / `svc.handle(req)` on a field or port of dropsync's own: a receiver
    named like one of its ports rather than a std collection."""
    return re.search(r"\b(queue|svc|sync|store|admin|ae|deferred|api|webhook|pusher)\b(\.\w+)*\." + name + r"\(", body) is not None


def code_actions(binary):
    """Every (resource, action) the binary's code can reach."""
    crate = entry = None
    for name in os.listdir(os.path.join(ROOT, "functions")):
        toml_path = os.path.join(ROOT, "functions", name, "Cargo.toml")
        if not os.path.exists(toml_path):
            continue
        with open(toml_path, "rb") as f:
            for b in tomllib.load(f).get("bin", []):
                if b["name"] == binary:
                    crate = os.path.join(ROOT, "functions", name)
                    entry = os.path.join(crate, b["path"])
    assert crate, f"no crate declares binary {binary}"
    src = os.path.join(crate, "src")
    bins = {os.path.join(dp, f) for dp, _, fs in os.walk(src) for f in fs
            if f.endswith(".rs") and (f == "main.rs" or os.sep + "bin" + os.sep in os.path.join(dp, f))}
    other_bins = bins - {entry}
    fns = index_fns(f for c in linked_crates(crate) for f in rust_files(c, exclude=other_bins))
    queue = []
    for path in rust_files(crate, exclude=other_bins):
        with open(path) as f:
            queue.append(("<entry>", path, strip_tests(f.read())))
    seen, found, dynamic, reached = set(), set(), set(), []
    while queue:
        name, path, body = queue.pop()
        reached.append(body)
        acts, dyn = actions_of(name, body)
        found |= acts
        dynamic |= dyn
        calls = CALL_RE.findall(body) + [("", r, "") for r in FN_REF_RE.findall(body)]
        for on_self, callee, empty in calls:
            if callee in STD_NAMES and not on_self and not own_trait_call(callee, body):
                continue
            this = on_self in ("self.", "Self::")
            for file, callee_body in candidates(fns.get((callee, not empty), []), path, this, on_self):
                if (file, callee_body[:200]) not in seen:
                    seen.add((file, callee_body[:200]))
                    queue.append((callee, file, callee_body))
    # A query whose index is a parameter: the indexes are the literals its reachable callers pass.
    for name in dynamic:
        pattern = re.compile(r"\b" + re.escape(name) + r"\(\s*\"(\w+)\"")
        for body in reached:
            found |= {(f"OrdersTable/index/{i}", "dynamodb:Query") for i in pattern.findall(body)}
    return found


def template_actions(t, fn):
    """(resource, action) pairs the function's role grants, queues folded into "queue", minus what
    the function's SQS event sources use and its log group."""
    role = tt.role_of(t, fn)
    consumed = {q for q, f, _ in tt.queue_consumers(t) if f == fn}
    log_group = tt.props(t, fn)["LoggingConfig"]["LogGroup"]["Ref"]
    out = set()
    for s in tt.statements(t, role):
        for resource in tt.as_list(s["Resource"]):
            key = "secret" if resource == tt.SECRET else tt.ref_target(resource)
            if key == log_group:
                continue
            for action in tt.as_list(s["Action"]):
                if key in consumed and action in EVENT_SOURCE:
                    continue
                if action.startswith("sqs:"):
                    key = "queue"
                out.add((key, action))
    return out


FUNCTIONS = {fn: spec["binary"] for fn, spec in tt.FUNCTIONS.items()}


@pytest.mark.parametrize("fn", sorted(FUNCTIONS))
def test_each_function_role_grants_exactly_the_actions_its_code_can_call(fn):
    t = tt.load()
    code = code_actions(FUNCTIONS[fn])
    granted = template_actions(t, fn)
    missing = sorted(code - granted)
    unused = sorted(granted - code)
    assert not missing, f"{fn}: the code calls actions its role does not grant: {missing}"
    assert not unused, f"{fn}: the role grants actions the code never calls: {unused}"


def test_the_extraction_sees_the_calls_it_must():
    # The pusher's lease release deletes its lease item, and the webhook's shop/redact pages an
    # index and batch-deletes: if these are not found, the scanner is blind, not the code clean.
    assert ("OrdersTable", "dynamodb:DeleteItem") in code_actions("tracking-pusher")
    webhook = code_actions("shopify-webhook")
    assert ("OrdersTable/index/gsi2", "dynamodb:Query") in webhook
    assert ("OrdersTable", "dynamodb:BatchWriteItem") in webhook
    assert ("secret", "secretsmanager:GetSecretValue") in webhook
    # The API's services are built by a fn passed by name to the deferred start, not called.
    assert ("secret", "secretsmanager:GetSecretValue") in code_actions("api")
