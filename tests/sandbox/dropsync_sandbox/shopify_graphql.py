"""GraphQL side of the sandbox Shopify: schema loading, validation, query cost, resolvers.

Documents are validated against Shopify's real 2026-10 Admin schema (introspection JSON) and executed by
graphql-core against that same client schema, with the resolvers below. Fields the sandbox does not model are
reported as a GraphQL error naming the field (instead of silently answering null).

Query cost (static, computed before execution; "requestedQueryCost"):

* scalar and enum fields: 0; ``__typename`` and introspection fields: 0
* a field returning an object (or interface/union): 1 + cost of its selection
* a plain list of objects (e.g. ``Order.fulfillments(first:)``, ``Fulfillment.trackingInfo(first:)``,
  ``FulfillmentOrder.supportedActions``): ``n`` x (1 + cost of its selection), ``n`` = ``first`` (1 if absent)
* a connection (a field returning ``*Connection`` with ``nodes``/``edges``):
  ``2 + n x element``, ``n`` = ``first`` or ``last`` (1 if absent), ``element`` = 1 + cost of the selection under
  ``nodes`` (or under ``edges { node }``; the larger one when both are asked); ``pageInfo``/``cursor`` are free
* each top-level field of a mutation: 10 (flat, its payload selection is not added)
* fragments are merged into the selection they are spread in (different type conditions are summed: an upper bound)

The actual cost ("actualQueryCost") applies the same rules to the data returned (a connection counts the
elements it really returned, a null object costs 0); the bucket is charged the requested cost before execution
and refunded the difference afterwards, as Shopify does.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import threading
from collections import OrderedDict
from typing import Any, Callable

import graphql
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
)
from graphql.type import get_named_type, get_nullable_type, is_leaf_type, is_list_type
from graphql.utilities import value_from_ast, value_from_ast_untyped

from . import shopify_store as st

DEFAULT_SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                   "admin_2026-10.json.gz")

# --------------------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------------------

_schema_lock = threading.Lock()
_schema_cache: dict[str, GraphQLSchema] = {}


def load_schema(path: str | None = None) -> GraphQLSchema:
    """Build the client schema from the (gzipped) introspection JSON once per process and path."""
    path = os.path.abspath(path or DEFAULT_SCHEMA_PATH)
    with _schema_lock:
        if path not in _schema_cache:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as fh:
                raw = json.load(fh)
            data = raw.get("data", raw)
            schema = graphql.build_client_schema(data)
            # Run graphql-core's one-off schema checks now rather than on the first request.
            graphql.validate(schema, graphql.parse("{ __typename }"))
            _schema_cache[path] = schema
        return _schema_cache[path]


# --------------------------------------------------------------------------------------------------------------
# Parse + validate (cached per document text)
# --------------------------------------------------------------------------------------------------------------

_CODE_RULES: list[tuple[str, str]] = [
    ("Cannot query field", "undefinedField"),
    ("Unknown argument", "argumentNotAccepted"),
    ("is required, but it was not provided", "missingRequiredArguments"),
    ("Unknown type", "undefinedType"),
    ("is never used", "variableNotUsed"),
    ("is not defined", "undefinedVariable"),
    ("used in position expecting", "variableMismatch"),
    ("must have a selection of subfields", "selectionMismatch"),
    ("must not have a selection", "selectionMismatch"),
    ("Unknown fragment", "undefinedFragment"),
    ("is never used.", "useAndDefineFragment"),
    ("Expected value of type", "argumentLiteralsIncompatible"),
    ("cannot represent", "argumentLiteralsIncompatible"),
    ("There can be only one", "uniquelyNamed"),
    ("Unknown directive", "undefinedDirective"),
    ("Syntax Error", "parseError"),
]


def error_code(message: str) -> str:
    for needle, code in _CODE_RULES:
        if needle in message:
            return code
    return "GRAPHQL_VALIDATION_FAILED"


def format_error(err: GraphQLError, code: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"message": err.message}
    if err.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in err.locations]
    if err.path:
        out["path"] = list(err.path)
    ext = dict(err.extensions or {})
    ext.setdefault("code", code or error_code(err.message))
    out["extensions"] = ext
    return out


class Checked:
    __slots__ = ("document", "errors", "kind")

    def __init__(self, document: graphql.DocumentNode | None, errors: list[dict[str, Any]], kind: str):
        self.document = document
        self.errors = errors
        self.kind = kind  # "ok" | "parse" | "invalid"


class Validator:
    def __init__(self, schema: GraphQLSchema, cache_size: int = 1024):
        self.schema = schema
        self._cache: OrderedDict[str, Checked] = OrderedDict()
        self._lock = threading.Lock()
        self._cache_size = cache_size

    def check(self, query: str) -> Checked:
        with self._lock:
            hit = self._cache.get(query)
            if hit is not None:
                self._cache.move_to_end(query)
                return hit
        try:
            doc = graphql.parse(query)
        except GraphQLError as exc:
            checked = Checked(None, [format_error(exc, "parseError")], "parse")
        else:
            errs = graphql.validate(self.schema, doc)
            if errs:
                checked = Checked(doc, [format_error(e) for e in errs], "invalid")
            else:
                checked = Checked(doc, [], "ok")
        with self._lock:
            self._cache[query] = checked
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return checked


# --------------------------------------------------------------------------------------------------------------
# Cost
# --------------------------------------------------------------------------------------------------------------

MUTATION_FIELD_COST = 10


def fragments_of(doc: graphql.DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}


def variables_with_defaults(schema: GraphQLSchema, op: OperationDefinitionNode,
                            variables: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(variables or {})
    for vd in op.variable_definitions or []:
        name = vd.variable.name.value
        if name not in out and vd.default_value is not None:
            vtype = graphql.utilities.type_from_ast(schema, vd.type)
            val = value_from_ast(vd.default_value, vtype) if vtype is not None else None
            out[name] = None if val is graphql.Undefined else val
    return out


def _collect(schema: GraphQLSchema, parent: Any, selection_sets: list[Any], fragments: dict[str, Any],
             out: "OrderedDict[str, tuple[Any, list[FieldNode]]] | None" = None,
             seen_fragments: frozenset[str] = frozenset()) -> "OrderedDict[str, tuple[Any, list[FieldNode]]]":
    """response key -> (field definition, [field nodes]), fragments flattened."""
    if out is None:
        out = OrderedDict()
    for selection_set in selection_sets:
        if selection_set is None:
            continue
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                name = sel.name.value
                if name.startswith("__"):
                    continue
                fdef = (getattr(parent, "fields", None) or {}).get(name)
                if fdef is None:
                    continue
                key = sel.alias.value if sel.alias else name
                if key in out:
                    out[key][1].append(sel)
                else:
                    out[key] = (fdef, [sel])
            elif isinstance(sel, InlineFragmentNode):
                t = schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                _collect(schema, t or parent, [sel.selection_set], fragments, out, seen_fragments)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                frag = fragments.get(name)
                if frag is None or name in seen_fragments:
                    continue
                t = schema.get_type(frag.type_condition.name.value)
                _collect(schema, t or parent, [frag.selection_set], fragments, out, seen_fragments | {name})
    return out


def _page_size(nodes: list[FieldNode], variables: dict[str, Any]) -> int:
    for arg_name in ("first", "last"):
        for node in nodes:
            for a in node.arguments or []:
                if a.name.value == arg_name:
                    v = value_from_ast_untyped(a.value, variables)
                    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                        return v
    return 1


def _is_connection(named: Any) -> bool:
    fields = getattr(named, "fields", None) or {}
    return named.name.endswith("Connection") and ("nodes" in fields or "edges" in fields)


class CostCalculator:
    def __init__(self, schema: GraphQLSchema, doc: graphql.DocumentNode, variables: dict[str, Any]):
        self.schema = schema
        self.fragments = fragments_of(doc)
        self.variables = variables

    # ---- requested (static) ----
    def requested(self, op: OperationDefinitionNode) -> int:
        if op.operation == OperationType.MUTATION:
            root = self.schema.mutation_type
            return MUTATION_FIELD_COST * len(_collect(self.schema, root, [op.selection_set], self.fragments))
        root = self.schema.query_type
        return self._selection(root, [op.selection_set])

    def _selection(self, parent: Any, selection_sets: list[Any]) -> int:
        total = 0
        for fdef, nodes in _collect(self.schema, parent, selection_sets, self.fragments).values():
            total += self._field(fdef, nodes)
        return total

    def _field(self, fdef: Any, nodes: list[FieldNode]) -> int:
        named = get_named_type(fdef.type)
        if is_leaf_type(named):
            return 0
        subs = [n.selection_set for n in nodes]
        if _is_connection(named):
            return 2 + _page_size(nodes, self.variables) * self._connection_element(named, subs)
        inner = 1 + self._selection(named, subs)
        if is_list_type(get_nullable_type(fdef.type)):
            return _page_size(nodes, self.variables) * inner
        return inner

    def _connection_element(self, conn_type: Any, subs: list[Any]) -> int:
        by_nodes = by_edges = 0
        for key, (fdef, nodes) in _collect(self.schema, conn_type, subs, self.fragments).items():
            name = nodes[0].name.value
            if name == "nodes":
                by_nodes = max(by_nodes, 1 + self._selection(get_named_type(fdef.type),
                                                             [n.selection_set for n in nodes]))
            elif name == "edges":
                edge_type = get_named_type(fdef.type)
                edge_fields = _collect(self.schema, edge_type, [n.selection_set for n in nodes], self.fragments)
                for efdef, enodes in edge_fields.values():
                    if enodes[0].name.value == "node":
                        by_edges = max(by_edges, 1 + self._selection(get_named_type(efdef.type),
                                                                     [n.selection_set for n in enodes]))
        return max(by_nodes, by_edges)

    # ---- actual (from the data returned) ----
    def actual(self, op: OperationDefinitionNode, data: dict[str, Any] | None) -> int:
        if data is None:
            return 0
        if op.operation == OperationType.MUTATION:
            fields = _collect(self.schema, self.schema.mutation_type, [op.selection_set], self.fragments)
            return MUTATION_FIELD_COST * sum(1 for key in fields if key in data)
        return self._actual_selection(self.schema.query_type, [op.selection_set], data)

    def _actual_selection(self, parent: Any, subs: list[Any], data: Any) -> int:
        if not isinstance(data, dict):
            return 0
        total = 0
        for key, (fdef, nodes) in _collect(self.schema, parent, subs, self.fragments).items():
            total += self._actual_field(fdef, nodes, data.get(key))
        return total

    def _actual_field(self, fdef: Any, nodes: list[FieldNode], value: Any) -> int:
        named = get_named_type(fdef.type)
        if is_leaf_type(named) or value is None:
            return 0
        subs = [n.selection_set for n in nodes]
        if _is_connection(named) and isinstance(value, dict):
            best = 0
            for key, (cfdef, cnodes) in _collect(self.schema, named, subs, self.fragments).items():
                items = value.get(key)
                if not isinstance(items, list):
                    continue
                csubs = [n.selection_set for n in cnodes]
                ctype = get_named_type(cfdef.type)
                if cnodes[0].name.value == "nodes":
                    best = max(best, sum(1 + self._actual_selection(ctype, csubs, it) for it in items
                                         if it is not None))
                elif cnodes[0].name.value == "edges":
                    cost = 0
                    efields = _collect(self.schema, ctype, csubs, self.fragments)
                    for edge in items:
                        if not isinstance(edge, dict):
                            continue
                        for ekey, (efdef, enodes) in efields.items():
                            if enodes[0].name.value == "node" and edge.get(ekey) is not None:
                                cost += 1 + self._actual_selection(get_named_type(efdef.type),
                                                                   [n.selection_set for n in enodes], edge[ekey])
                    best = max(best, cost)
            return 2 + best
        if isinstance(value, list):
            return sum(1 + self._actual_selection(named, subs, it) for it in value if it is not None)
        return 1 + self._actual_selection(named, subs, value)


# --------------------------------------------------------------------------------------------------------------
# Resolvers
# --------------------------------------------------------------------------------------------------------------


class Context:
    def __init__(self, shop: st.Shop):
        self.shop = shop
        self.events: list[tuple[str, Any]] = []  # (topic, payload) webhooks this request triggered

    def emit(self, topic: str, payload: Callable[[], Any]) -> None:
        """Queue a webhook for the shop's subscriptions to ``topic``; the payload is taken now (trigger time)."""
        if any(sub.get("topic") == topic for sub in self.shop.webhook_subscriptions):
            self.events.append((topic, payload()))


def field_resolver(source: Any, info: graphql.GraphQLResolveInfo, **args: Any) -> Any:
    name = info.field_name
    if isinstance(source, dict):
        if name not in source:
            raise GraphQLError(
                f"The dropsync sandbox does not implement {info.parent_type.name}.{name}; add it to "
                "tests/sandbox/dropsync_sandbox/shopify_graphql.py if the project needs it.",
                extensions={"code": "SANDBOX_NOT_IMPLEMENTED"},
            )
        value = source[name]
        return value(info, **args) if callable(value) else value
    return graphql.default_field_resolver(source, info, **args)


def type_resolver(value: Any, info: graphql.GraphQLResolveInfo, abstract_type: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("__typename")
    return None


def _b64(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def _unb64(cursor: str) -> Any:
    try:
        return json.loads(base64.b64decode(cursor.encode(), validate=True))
    except Exception as exc:  # noqa: BLE001
        raise GraphQLError(f"Invalid cursor for current pagination sort: {cursor!r}",
                           extensions={"code": "BAD_CURSOR"}) from exc


MAX_PAGE = 250


def connection(items: list[Any], view: Callable[[Any], dict[str, Any]], key: Callable[[Any], Any],
               first: int | None = None, last: int | None = None, after: str | None = None,
               before: str | None = None, reverse: bool = False, **_: Any) -> dict[str, Any]:
    """Relay connection over ``items`` (sorted by ``key`` ascending), with keyset cursors."""
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_REQUEST"})
    for name, v in (("first", first), ("last", last)):
        if v is not None and (v < 0 or v > MAX_PAGE):
            raise GraphQLError(f"The '{name}' argument must be between 0 and {MAX_PAGE}.",
                               extensions={"code": "BAD_REQUEST"})
    ordered = sorted(items, key=key, reverse=bool(reverse))

    def beyond(k: Any, ck: Any) -> bool:  # k comes after cursor key ck in the current order
        try:
            return k < ck if reverse else k > ck
        except TypeError as exc:
            raise GraphQLError("Invalid cursor for current pagination sort.",
                               extensions={"code": "BAD_CURSOR"}) from exc

    window = ordered
    if after:
        ck = _unb64(after)
        window = [x for x in window if beyond(list(_jsonable(key(x))), ck)]
    if before:
        ck = _unb64(before)
        window = [x for x in window if beyond(ck, list(_jsonable(key(x))))]
    has_next = has_prev = False
    if first is not None:
        has_next = len(window) > first
        window = window[:first]
        has_prev = bool(after) and len(window) < len(ordered)
    if last is not None:
        has_prev = len(window) > last
        window = window[-last:] if last else []
        has_next = has_next or (bool(before) and len(window) < len(ordered))
    edges = []
    for x in window:
        cursor = _b64(list(_jsonable(key(x))))
        edges.append({"__typename": "Edge", "cursor": cursor, "node": view(x)})
    return {
        "edges": edges,
        "nodes": [e["node"] for e in edges],
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_prev,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def _jsonable(k: Any) -> tuple[Any, ...]:
    return tuple(k) if isinstance(k, tuple) else (k,)


def money_bag(amount: Any, currency: str, presentment: str | None = None) -> dict[str, Any]:
    amount = st.money(amount)
    return {
        "shopMoney": {"amount": amount, "currencyCode": currency},
        "presentmentMoney": {"amount": amount, "currencyCode": presentment or currency},
    }


def _country_code(code: Any) -> str | None:
    return str(code).upper() if code else None


def address_view(a: dict[str, Any] | None, owner_id: int) -> dict[str, Any] | None:
    if not isinstance(a, dict):
        return None
    name = a.get("name") or " ".join(x for x in (a.get("first_name"), a.get("last_name")) if x) or None
    return {
        "__typename": "MailingAddress",
        "id": st.gid("MailingAddress", f"{owner_id}"),
        "address1": a.get("address1"), "address2": a.get("address2"), "city": a.get("city"),
        "company": a.get("company"), "country": a.get("country"), "countryCodeV2": _country_code(a.get("country_code")),
        "firstName": a.get("first_name"), "lastName": a.get("last_name"), "name": name, "phone": a.get("phone"),
        "province": a.get("province"), "provinceCode": a.get("province_code"), "zip": a.get("zip"),
        "formatted": lambda info, **_: [x for x in (a.get("address1"), a.get("address2"), a.get("city"),
                                                    a.get("zip"), a.get("country")) if x],
    }


def customer_view(c: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(c, dict) or c.get("id") is None:
        return None
    first, last = c.get("first_name"), c.get("last_name")
    return {
        "__typename": "Customer",
        "id": st.gid("Customer", c["id"]), "legacyResourceId": str(c["id"]),
        "email": c.get("email"), "firstName": first, "lastName": last, "phone": c.get("phone"),
        "displayName": " ".join(x for x in (first, last) if x) or (c.get("email") or ""),
    }


_CANCEL_REASONS = {"customer", "declined", "fraud", "inventory", "other", "staff"}


class Views:
    """Turns store objects into dicts the default-style resolver walks. Nested objects are lambdas (lazy)."""

    def __init__(self, shop: st.Shop):
        self.shop = shop

    # ---- Order ----
    def order(self, o: st.Order) -> dict[str, Any]:
        d = o.data
        off = self.shop.utc_offset_minutes
        cur = d.get("currency", "USD")
        pcur = d.get("presentment_currency", cur)
        fs = str(d.get("financial_status") or "").lower()
        cancel_reason = d.get("cancel_reason")
        tags = [t.strip() for t in str(d.get("tags") or "").split(",") if t.strip()]
        return {
            "__typename": "Order",
            "id": o.gid,
            "legacyResourceId": str(o.id),
            "name": d.get("name"),
            "email": d.get("email"),
            "phone": d.get("phone"),
            "note": d.get("note"),
            "tags": tags,
            "test": bool(d.get("test")),
            "confirmed": bool(d.get("confirmed", True)),
            "createdAt": st.iso_utc(o.created_ts),
            "updatedAt": st.iso_utc(o.updated_ts),
            "processedAt": st.iso_utc(st.parse_time(d.get("processed_at"), off) or o.created_ts),
            "cancelledAt": st.iso_utc(st.parse_time(d.get("cancelled_at"), off)),
            "cancelReason": (str(cancel_reason).upper() if str(cancel_reason).lower() in _CANCEL_REASONS
                             else ("OTHER" if cancel_reason else None)),
            "closed": bool(d.get("closed_at")),
            "closedAt": st.iso_utc(st.parse_time(d.get("closed_at"), off)),
            "displayFinancialStatus": o.display_financial_status(),
            "displayFulfillmentStatus": o.display_fulfillment_status(),
            "fullyPaid": fs == "paid",
            "unpaid": fs in ("pending", "authorized", "partially_paid", "expired", "voided", ""),
            "fulfillable": lambda info, **_: any(fo.can_create_fulfillment() and fo.remaining_total() > 0
                                                 for fo in o.visible_fos()),
            "currencyCode": cur,
            "presentmentCurrencyCode": pcur,
            "totalPriceSet": money_bag(d.get("total_price"), cur, pcur),
            "subtotalPriceSet": money_bag(d.get("subtotal_price"), cur, pcur),
            "currentTotalPriceSet": money_bag(d.get("current_total_price", d.get("total_price")), cur, pcur),
            "totalTaxSet": money_bag(d.get("total_tax"), cur, pcur),
            "statusPageUrl": f"https://{self.shop.domain}/{o.id}/orders/sandbox",
            "shippingAddress": address_view(d.get("shipping_address"), o.id),
            "billingAddress": address_view(d.get("billing_address"), o.id + 1),
            "customer": customer_view(d.get("customer")),
            "lineItems": lambda info, **a: connection(d["line_items"], lambda li: self.line_item(li, o),
                                                      lambda li: li["id"], **a),
            "fulfillmentOrders": lambda info, **a: self._order_fos(o, **a),
            "fulfillments": lambda info, first=None, query=None, **_: [
                self.fulfillment(f) for f in o.fulfillments][: (first if first is not None else None)],
        }

    def _order_fos(self, o: st.Order, displayable: bool = False, query: str | None = None,
                   **a: Any) -> dict[str, Any]:
        fos = o.visible_fos()
        if displayable:
            fos = [fo for fo in fos if fo.status not in ("CANCELLED", "INCOMPLETE")]
        for neg, field, op, value in st.parse_search(query):
            if field == "status":
                fos = [fo for fo in fos if (fo.status.lower() == value.lower()) != neg]
            elif field == "assigned_location_id":
                fos = [fo for fo in fos if (str(fo.location_id) == str(st.parse_gid(value))) != neg]
        return connection(fos, self.fulfillment_order, lambda fo: fo.id, **a)

    # ---- LineItem ----
    def line_item(self, li: dict[str, Any], o: st.Order) -> dict[str, Any]:
        cur = o.data.get("currency", "USD")
        qty = int(li.get("quantity") or 0)
        current = int(li.get("current_quantity", qty) or 0)
        done = o.fulfilled_qty(li["id"])
        unfulfilled = 0 if o.is_cancelled() else max(0, current - done)
        pid, vid = li.get("product_id"), li.get("variant_id")
        return {
            "__typename": "LineItem",
            "id": st.gid("LineItem", li["id"]),
            "sku": li.get("sku"),
            "name": li.get("name") or li.get("title") or "",
            "title": li.get("title") or "",
            "variantTitle": li.get("variant_title"),
            "vendor": li.get("vendor"),
            "quantity": qty,
            "currentQuantity": current,
            "unfulfilledQuantity": unfulfilled,
            "fulfillableQuantity": unfulfilled,
            "nonFulfillableQuantity": max(0, qty - current),
            "refundableQuantity": current,
            "fulfillmentStatus": "fulfilled" if done >= qty and qty > 0 else ("partial" if done else "unfulfilled"),
            "requiresShipping": bool(li.get("requires_shipping", True)),
            "isGiftCard": bool(li.get("gift_card", False)),
            "taxable": bool(li.get("taxable", True)),
            "merchantEditable": not o.is_cancelled(),
            "canRestock": False,
            "originalUnitPriceSet": money_bag(li.get("price"), cur),
            "discountedUnitPriceSet": money_bag(li.get("price"), cur),
            "product": None if pid is None else {
                "__typename": "Product", "id": st.gid("Product", pid), "legacyResourceId": str(pid),
                "title": li.get("title") or ""},
            "variant": None if vid is None else {
                "__typename": "ProductVariant", "id": st.gid("ProductVariant", vid), "legacyResourceId": str(vid),
                "sku": li.get("sku"), "title": li.get("variant_title") or "Default Title"},
        }

    def line_item_by_id(self, o: st.Order, line_item_id: int) -> dict[str, Any]:
        for li in o.data["line_items"]:
            if li["id"] == line_item_id:
                return self.line_item(li, o)
        raise GraphQLError(f"line item {line_item_id} vanished")

    # ---- FulfillmentOrder ----
    def fulfillment_order(self, fo: st.FulfillmentOrder) -> dict[str, Any]:
        o = fo.order
        return {
            "__typename": "FulfillmentOrder",
            "id": fo.gid,
            "status": fo.status,
            "requestStatus": fo.request_status,
            "createdAt": st.iso_utc(fo.created_ts),
            "updatedAt": st.iso_utc(fo.updated_ts),
            "fulfillAt": st.iso_utc(fo.fulfill_at),
            "fulfillBy": None,
            "orderId": o.gid,
            "orderName": o.data.get("name"),
            "orderProcessedAt": st.iso_utc(o.created_ts),
            "order": lambda info, **_: self.order(o),
            "supportedActions": [{"__typename": "FulfillmentOrderSupportedAction", "action": a, "externalUrl": None}
                                 for a in fo.supported_actions()],
            "assignedLocation": {
                "__typename": "FulfillmentOrderAssignedLocation",
                "name": fo.location, "address1": None, "address2": None, "city": None, "province": None,
                "zip": None, "phone": None, "countryCode": "CA",
                "location": {"__typename": "Location", "id": st.gid("Location", fo.location_id),
                             "legacyResourceId": str(fo.location_id), "name": fo.location,
                             "isFulfillmentService": fo.fulfillment_service, "isActive": True},
            },
            "fulfillmentHolds": [
                {"__typename": "FulfillmentHold", "id": st.gid("FulfillmentHold", h.id), "reason": h.reason,
                 "reasonNotes": h.notes, "handle": h.handle, "displayReason": h.reason.replace("_", " ").capitalize(),
                 "heldByRequestingApp": False, "heldByApp": None}
                for h in fo.holds
            ],
            "lineItems": lambda info, **a: connection(fo.lines, lambda line: self.fo_line(fo, line),
                                                      lambda line: line.id, **a),
            "fulfillments": lambda info, **a: connection(
                [f for f in o.fulfillments if fo in f.fos], self.fulfillment, lambda f: f.id, **a),
            "destination": None,
            "deliveryMethod": None,
        }

    def fo_line(self, fo: st.FulfillmentOrder, line: st.FOLine) -> dict[str, Any]:
        o = fo.order
        li = next((x for x in o.data["line_items"] if x["id"] == line.line_item_id), {})
        return {
            "__typename": "FulfillmentOrderLineItem",
            "id": st.gid("FulfillmentOrderLineItem", line.id),
            "remainingQuantity": line.remaining,
            "totalQuantity": line.total,
            "sku": li.get("sku"),
            "productTitle": li.get("title") or "",
            "variantTitle": li.get("variant_title"),
            "requiresShipping": bool(li.get("requires_shipping", True)),
            "inventoryItemId": None,
            "warnings": [],
            "lineItem": lambda info, **_: self.line_item_by_id(o, line.line_item_id),
        }

    # ---- Fulfillment ----
    def fulfillment(self, f: st.Fulfillment) -> dict[str, Any]:
        o = f.order
        return {
            "__typename": "Fulfillment",
            "id": f.gid,
            "legacyResourceId": str(f.id),
            "name": f.name,
            "status": f.status,
            "displayStatus": "FULFILLED" if f.status == "SUCCESS" else ("CANCELED" if f.status == "CANCELLED"
                                                                         else "FAILURE"),
            "createdAt": st.iso_utc(f.created_ts),
            "updatedAt": st.iso_utc(f.updated_ts),
            "deliveredAt": None,
            "inTransitAt": None,
            "estimatedDeliveryAt": None,
            "requiresShipping": True,
            "totalQuantity": sum(q for _, _, q in f.lines),
            "order": lambda info, **_: self.order(o),
            "trackingInfo": lambda info, first=None, **_: [
                {"__typename": "FulfillmentTrackingInfo", "company": t.get("company"), "number": t.get("number"),
                 "url": t.get("url")} for t in f.tracking][: (first if first is not None else None)],
            "fulfillmentLineItems": lambda info, **a: connection(
                f.lines, lambda row: {
                    "__typename": "FulfillmentLineItem",
                    "id": st.gid("FulfillmentLineItem", row[0]),
                    "quantity": row[2],
                    "lineItem": lambda info2, **_: self.line_item_by_id(o, row[1].line_item_id),
                }, lambda row: row[0], **a),
            "fulfillmentOrders": lambda info, **a: connection(f.fos, self.fulfillment_order, lambda fo: fo.id, **a),
            "location": {"__typename": "Location", "id": st.gid("Location", f.location_id),
                         "legacyResourceId": str(f.location_id), "name": f.location, "isActive": True,
                         "isFulfillmentService": False},
            "service": None,
            "originAddress": None,
        }

    def node(self, raw: Any) -> dict[str, Any] | None:
        kind = st.gid_kind(raw)
        n = st.parse_gid(raw)
        shop = self.shop
        if kind == "Order" and n in shop.orders:
            return self.order(shop.orders[n])
        if kind == "FulfillmentOrder":
            fo = shop._visible_fo(raw)
            return self.fulfillment_order(fo) if fo else None
        if kind == "Fulfillment" and n in shop.fulfillments:
            return self.fulfillment(shop.fulfillments[n])
        if kind == "LineItem" and n in shop.line_items:
            return self.line_item_by_id(shop.line_items[n], n)
        if kind is None:
            raise GraphQLError(f"Invalid global id '{raw}'", extensions={"code": "argumentLiteralsIncompatible"})
        return None


def _check_gid(raw: Any) -> None:
    if st.gid_kind(raw) is None:
        raise GraphQLError(f"Invalid global id '{raw}'", extensions={"code": "argumentLiteralsIncompatible"})


def _user_errors(errs: list[dict[str, Any]], typename: str = "UserError", with_code: bool = False) -> list[dict]:
    out = []
    for e in errs:
        row = {"__typename": typename, "field": e.get("field"), "message": e["message"]}
        if with_code:
            row["code"] = e.get("code")
        out.append(row)
    return out


_ORDER_SORT = {
    "UPDATED_AT": lambda o: (o.updated_ts, o.id),
    "CREATED_AT": lambda o: (o.created_ts, o.id),
    "PROCESSED_AT": lambda o: (st.parse_time(o.data.get("processed_at")) or o.created_ts, o.id),
    "ID": lambda o: (o.id,),
    "ORDER_NUMBER": lambda o: (int(o.data.get("order_number") or 0), o.id),
    "RELEVANCE": lambda o: (o.id,),
}


def build_root(ctx: Context) -> dict[str, Any]:
    shop = ctx.shop
    v = Views(shop)

    def need(scope: str, what: str) -> None:
        if not shop.has_scope(scope):
            raise GraphQLError(f"Access denied for {what} field. Required access: `{scope}` access scope.",
                               extensions={"code": "ACCESS_DENIED",
                                           "documentation": "https://shopify.dev/api/usage/access-scopes",
                                           "requiredAccess": f"`{scope}` access scope."})

    def order(info: Any, id: str) -> Any:  # noqa: A002
        need("read_orders", "order")
        _check_gid(id)
        n = st.parse_gid(id, "Order")
        o = shop.orders.get(n) if n is not None else None
        return v.order(o) if o else None

    def orders(info: Any, query: str | None = None, sortKey: str = "PROCESSED_AT", reverse: bool = False,
               **a: Any) -> Any:
        need("read_orders", "orders")
        terms = st.parse_search(query)
        items = [o for o in shop.orders.values() if st.order_matches(o, terms)]
        key = _ORDER_SORT.get(sortKey, _ORDER_SORT["ID"])
        return connection(items, v.order, key, reverse=reverse, **a)

    def fulfillment_order(info: Any, id: str) -> Any:  # noqa: A002
        _check_gid(id)
        fo = shop._visible_fo(id)
        return v.fulfillment_order(fo) if fo else None

    def fulfillment(info: Any, id: str) -> Any:  # noqa: A002
        _check_gid(id)
        n = st.parse_gid(id, "Fulfillment")
        f = shop.fulfillments.get(n) if n is not None else None
        return v.fulfillment(f) if f else None

    def fulfillment_create(info: Any, fulfillment: dict[str, Any], message: str | None = None) -> Any:
        f, errs = shop.create_fulfillment(
            list(fulfillment.get("lineItemsByFulfillmentOrder") or []),
            fulfillment.get("trackingInfo"),
            bool(fulfillment.get("notifyCustomer") or False),
            "api",
            message,
        )
        if f is not None:
            shop.stats["fulfillments_created"] += 1
            _fulfillment_events(ctx, f, "fulfillments/create")
        else:
            shop.stats["user_errors"] += len(errs)
        return {"__typename": "FulfillmentCreatePayload", "fulfillment": v.fulfillment(f) if f else None,
                "userErrors": _user_errors(errs)}

    def tracking_update(info: Any, fulfillmentId: str, trackingInfoInput: dict[str, Any],
                        notifyCustomer: bool | None = None) -> Any:
        f, errs = shop.update_tracking(fulfillmentId, trackingInfoInput, notifyCustomer)
        if f is not None:
            shop.stats["tracking_updates"] += 1
            ctx.emit("fulfillments/update", lambda: f.to_rest(shop.utc_offset_minutes))
            ctx.emit("orders/updated", lambda: f.order.to_rest())
        else:
            shop.stats["user_errors"] += len(errs)
        return {"__typename": "FulfillmentTrackingInfoUpdatePayload",
                "fulfillment": v.fulfillment(f) if f else None, "userErrors": _user_errors(errs)}

    def release_hold(info: Any, id: str, holdIds: list[str] | None = None, **_: Any) -> Any:  # noqa: A002
        fo, errs = shop.release_hold(id, holdIds)
        if fo is not None:
            ctx.emit("fulfillment_orders/hold_released",
                               lambda: {"fulfillment_order": {"id": fo.gid, "status": fo.status.lower()}})
        else:
            shop.stats["user_errors"] += len(errs)
        return {"__typename": "FulfillmentOrderReleaseHoldPayload",
                "fulfillmentOrder": v.fulfillment_order(fo) if fo else None,
                "userErrors": _user_errors(errs, "FulfillmentOrderReleaseHoldUserError", with_code=True)}

    def hold(info: Any, id: str, fulfillmentHold: dict[str, Any]) -> Any:  # noqa: A002
        fo, h, errs = shop.hold(id, fulfillmentHold.get("reason", "OTHER"), fulfillmentHold.get("reasonNotes"),
                                fulfillmentHold.get("handle"))
        if fo is not None:
            ctx.emit("fulfillment_orders/placed_on_hold",
                               lambda: {"fulfillment_order": {"id": fo.gid, "status": fo.status.lower()}})
        else:
            shop.stats["user_errors"] += len(errs)
        return {"__typename": "FulfillmentOrderHoldPayload",
                "fulfillmentOrder": v.fulfillment_order(fo) if fo else None,
                "fulfillmentHold": ({"__typename": "FulfillmentHold", "id": st.gid("FulfillmentHold", h.id),
                                     "reason": h.reason, "reasonNotes": h.notes, "handle": h.handle,
                                     "displayReason": h.reason, "heldByRequestingApp": True, "heldByApp": None}
                                    if h else None),
                "remainingFulfillmentOrder": None,
                "userErrors": _user_errors(errs, "FulfillmentOrderHoldUserError", with_code=True)}

    def open_fo(info: Any, id: str) -> Any:  # noqa: A002
        fo, errs = shop.open_fo(id)
        if fo is None:
            shop.stats["user_errors"] += len(errs)
        return {"__typename": "FulfillmentOrderOpenPayload",
                "fulfillmentOrder": v.fulfillment_order(fo) if fo else None, "userErrors": _user_errors(errs)}

    def _sub_node(sub: dict[str, str]) -> dict[str, Any]:
        return {"__typename": "WebhookSubscription", "id": sub["id"], "topic": sub["topic"].upper().replace("/", "_"),
                "uri": sub["target_url"], "callbackUrl": sub["target_url"]}

    def webhook_subscriptions(info: Any, first: int | None = None, after: str | None = None, **_: Any) -> Any:
        subs = list(shop.webhook_subscriptions)
        start = int(after) if after else 0
        n = first or 50
        page = subs[start:start + n]
        more = start + n < len(subs)
        nodes = [_sub_node(x) for x in page]
        return {"__typename": "WebhookSubscriptionConnection", "nodes": nodes,
                "edges": [{"cursor": str(start + i + 1), "node": x} for i, x in enumerate(nodes)],
                "pageInfo": {"hasNextPage": more, "hasPreviousPage": start > 0,
                             "startCursor": str(start) if page else None,
                             "endCursor": str(start + len(page)) if page else None}}

    def _uri_errors(uri: Any) -> list[dict[str, Any]]:
        if not isinstance(uri, str) or not (uri.startswith("https://") or uri.startswith("http://")):
            return [{"__typename": "UserError", "field": ["webhookSubscription", "uri"],
                     "message": "Address is invalid"}]
        return []

    def webhook_subscription_create(info: Any, topic: str, webhookSubscription: dict[str, Any]) -> Any:
        uri = webhookSubscription.get("uri") or webhookSubscription.get("callbackUrl")
        errs = _uri_errors(uri)
        name = topic.lower().replace("_", "/", 1)
        if not errs and any(x["topic"] == name and x["target_url"] == uri for x in shop.webhook_subscriptions):
            errs = [{"__typename": "UserError", "field": ["webhookSubscription", "uri"],
                     "message": "Address for this topic has already been taken"}]
        if errs:
            return {"__typename": "WebhookSubscriptionCreatePayload", "webhookSubscription": None, "userErrors": errs}
        sub = shop.add_webhook_subscription(name, uri)
        return {"__typename": "WebhookSubscriptionCreatePayload", "webhookSubscription": _sub_node(sub),
                "userErrors": []}

    def webhook_subscription_update(info: Any, id: str, webhookSubscription: dict[str, Any]) -> Any:  # noqa: A002
        uri = webhookSubscription.get("uri") or webhookSubscription.get("callbackUrl")
        errs = _uri_errors(uri)
        sub = next((x for x in shop.webhook_subscriptions if x.get("id") == id), None)
        if sub is None and not errs:
            errs = [{"__typename": "UserError", "field": ["id"], "message": "Webhook subscription does not exist"}]
        if errs:
            return {"__typename": "WebhookSubscriptionUpdatePayload", "webhookSubscription": None, "userErrors": errs}
        sub["target_url"] = uri
        return {"__typename": "WebhookSubscriptionUpdatePayload", "webhookSubscription": _sub_node(sub),
                "userErrors": []}

    return {
        # QueryRoot
        "webhookSubscriptions": webhook_subscriptions,
        "webhookSubscriptionCreate": webhook_subscription_create,
        "webhookSubscriptionUpdate": webhook_subscription_update,
        "order": order,
        "orders": orders,
        "fulfillmentOrder": fulfillment_order,
        "fulfillment": fulfillment,
        "node": lambda info, id: v.node(id),  # noqa: A002
        "nodes": lambda info, ids: [v.node(i) for i in ids],
        "shop": lambda info: {"__typename": "Shop", "name": shop.domain.split(".")[0],
                              "myshopifyDomain": shop.domain, "id": st.gid("Shop", 1),
                              "ianaTimezone": "America/New_York", "currencyCode": "USD",
                              "timezoneOffsetMinutes": shop.utc_offset_minutes},
        # Mutation
        "fulfillmentCreate": fulfillment_create,
        "fulfillmentTrackingInfoUpdate": tracking_update,
        "fulfillmentOrderReleaseHold": release_hold,
        "fulfillmentOrderHold": hold,
        "fulfillmentOrderOpen": open_fo,
    }


def _fulfillment_events(ctx: Context, f: st.Fulfillment, topic: str) -> None:
    shop = ctx.shop
    o = f.order
    ctx.emit(topic, lambda: f.to_rest(shop.utc_offset_minutes))
    status = o.rest_fulfillment_status()
    ctx.emit("orders/updated", lambda: o.to_rest())
    if status == "fulfilled":
        ctx.emit("orders/fulfilled", lambda: o.to_rest())
    elif status == "partial":
        ctx.emit("orders/partially_fulfilled", lambda: o.to_rest())


def execute(schema: GraphQLSchema, doc: graphql.DocumentNode, ctx: Context, variables: dict[str, Any] | None,
            operation_name: str | None) -> graphql.ExecutionResult:
    return graphql.execute(
        schema,
        doc,
        root_value=build_root(ctx),
        context_value=ctx,
        variable_values=variables,
        operation_name=operation_name,
        field_resolver=field_resolver,
        type_resolver=type_resolver,
    )

