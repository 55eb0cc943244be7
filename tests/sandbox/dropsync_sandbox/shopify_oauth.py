"""The sandbox's Shopify OAuth: the authorization code grant with expiring offline tokens, refresh with rotation
(and the old refresh token's grace until its replacement is used), and the client credentials grant.

It behaves like ``{shop}/admin/oauth/authorize`` and ``{shop}/admin/oauth/access_token``:
- authorize answers 302 to the app's redirect_uri with ``code, hmac, host, shop, state, timestamp``, the hmac being
  lowercase hex HMAC-SHA256 of the sorted query under the app's client secret (consent is simulated);
- codes are single use and live 60 s; with ``expiring=1`` the exchange returns an access token (``expires_in``) and a
  refresh token (``refresh_token_expires_in``); without it a non-expiring token and no refresh token;
- a refresh returns a new pair; the old refresh token keeps working until the new one is used, then
  ``400 invalid_grant``; a revoked shop answers ``400 invalid_grant`` (or 401 in ``revoke_mode: "401"``);
- client credentials mint a token (``expires_in`` 86399, no refresh token) unless the shop is configured to refuse
  with ``shop_not_permitted`` or ``app_not_installed``.
Expired access tokens are refused by the GraphQL endpoint with 401.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import urllib.parse
from typing import Any, Callable


def query_hmac(secret: str, params: dict[str, str]) -> str:
    message = "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("hmac", "signature"))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class OAuth:
    def __init__(self, register_token: Callable[[str, Any, float | None], None]):
        self.lock = threading.RLock()
        self.register_token = register_token
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.apps: dict[str, dict[str, Any]] = {}
            self.codes: dict[str, dict[str, Any]] = {}
            self.refresh: dict[str, dict[str, Any]] = {}
            self.revoked: dict[str, str] = {}  # shop -> "400" | "401"
            self.cc_refusal: dict[str, str] = {}  # shop -> error code
            self.stats = {"authorize": 0, "code_exchanges": 0, "refreshes": 0, "client_credentials": 0,
                          "refused": 0}
            self.shop_stats: dict[str, dict[str, int]] = {}

    def _count(self, shop: Any, key: str) -> None:
        self.stats[key] += 1
        if shop is not None:
            per = self.shop_stats.setdefault(shop.domain, {k: 0 for k in self.stats})
            per[key] += 1

    def stats_for(self, shop: str | None) -> dict[str, int]:
        with self.lock:
            if shop:
                return dict(self.shop_stats.get(shop, {k: 0 for k in self.stats}))
            return dict(self.stats)

    # ---- admin ------------------------------------------------------------------------------------------------
    def configure_app(self, cfg: dict[str, Any]) -> dict[str, Any]:
        cid = cfg.get("client_id")
        if not cid or not cfg.get("client_secret"):
            raise ValueError("client_id and client_secret are required")
        with self.lock:
            self.apps[cid] = {"secret": cfg["client_secret"], "previous_secret": cfg.get("previous_client_secret"),
                              "access_ttl": float(cfg.get("access_ttl", 3600)),
                              "refresh_ttl": float(cfg.get("refresh_ttl", 7776000)),
                              "cc_ttl": float(cfg.get("cc_ttl", 86399)),
                              "code_ttl": float(cfg.get("code_ttl", 60))}
        return {"client_id": cid}

    def revoke(self, shop: str, mode: str = "400") -> None:
        with self.lock:
            self.revoked[shop] = mode

    def unrevoke(self, shop: str) -> None:
        with self.lock:
            self.revoked.pop(shop, None)

    def refuse_client_credentials(self, shop: str, error: str | None) -> None:
        with self.lock:
            if error:
                self.cc_refusal[shop] = error
            else:
                self.cc_refusal.pop(shop, None)

    # ---- authorize --------------------------------------------------------------------------------------------
    def authorize(self, shop: Any, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        cid = query.get("client_id", "")
        redirect = query.get("redirect_uri", "")
        with self.lock:
            app = self.apps.get(cid)
            if shop is None or app is None or not redirect.startswith(("http://", "https://")):
                return 400, {}, {"error": "invalid_request", "error_description": "unknown shop, app or redirect_uri"}
            self._count(shop, "authorize")
            code = secrets.token_hex(16)
            self.codes[code] = {"shop": shop.domain, "client_id": cid, "expires": time.time() + app["code_ttl"]}
            params = {"code": code, "host": "c2FuZGJveA", "shop": shop.domain, "state": query.get("state", ""),
                      "timestamp": str(int(time.time()))}
            params["hmac"] = query_hmac(app["secret"], params)
        sep = "&" if "?" in redirect else "?"
        return 302, {"Location": redirect + sep + urllib.parse.urlencode(params)}, b""

    # ---- token endpoint ---------------------------------------------------------------------------------------
    def _issue(self, shop: Any, cid: str, ttl: float | None, with_refresh: bool, parent: str | None,
               app: dict[str, Any]) -> dict[str, Any]:
        access = ("shpat_" if ttl is None else "shpoa_") + secrets.token_hex(16)
        now = time.time()
        self.register_token(access, shop, None if ttl is None else now + ttl)
        out: dict[str, Any] = {"access_token": access, "scope": "read_orders,write_orders,"
                               "write_merchant_managed_fulfillment_orders"}
        if ttl is not None:
            out["expires_in"] = int(ttl)
        if with_refresh:
            rt = "shprt_" + secrets.token_hex(16)
            self.refresh[rt] = {"shop": shop.domain, "client_id": cid, "expires": now + app["refresh_ttl"],
                                "parent": parent, "used": False, "retired": False}
            out["refresh_token"] = rt
            out["refresh_token_expires_in"] = int(app["refresh_ttl"])
        return out

    def token(self, shop: Any, form: dict[str, str]) -> tuple[int, Any]:
        cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        with self.lock:
            app = self.apps.get(cid)
            if app is None or not hmac.compare_digest(secret, app["secret"]):
                self._count(shop, "refused")
                return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
            if shop is None:
                return 400, {"error": "invalid_request", "error_description": "unknown shop"}
            grant = form.get("grant_type")
            if grant == "client_credentials":
                self._count(shop, "client_credentials")
                refusal = self.cc_refusal.get(shop.domain)
                if refusal:
                    self._count(shop, "refused")
                    desc = {"shop_not_permitted": "Client credentials cannot be performed on this shop.",
                            "app_not_installed": "App is not installed on this shop."}.get(refusal, refusal)
                    return 400, {"error": refusal, "error_description": desc}
                return 200, self._issue(shop, cid, app["cc_ttl"], False, None, app)
            if grant == "refresh_token":
                self._count(shop, "refreshes")
                rt = form.get("refresh_token", "")
                entry = self.refresh.get(rt)
                mode = self.revoked.get(shop.domain)
                if mode == "401":
                    self._count(shop, "refused")
                    return 401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
                if (entry is None or entry["retired"] or entry["shop"] != shop.domain or entry["client_id"] != cid
                        or entry["expires"] <= time.time() or mode == "400"):
                    self._count(shop, "refused")
                    return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
                # Using a refresh token retires the one it replaced (the old one's grace ends here).
                if entry["parent"] and entry["parent"] in self.refresh:
                    self.refresh[entry["parent"]]["retired"] = True
                entry["used"] = True
                return 200, self._issue(shop, cid, app["access_ttl"], True, rt, app)
            code = form.get("code")
            if code is not None:
                self._count(shop, "code_exchanges")
                entry = self.codes.pop(code, None)
                if entry is None or entry["expires"] <= time.time() or entry["shop"] != shop.domain \
                        or entry["client_id"] != cid:
                    self._count(shop, "refused")
                    return 400, {"error": "invalid_request",
                                 "error_description": "The authorization code was not found or was already used"}
                expiring = str(form.get("expiring", "0")) == "1"
                self.unrevoke(shop.domain)
                return 200, self._issue(shop, cid, app["access_ttl"] if expiring else None, expiring, None, app)
            return 400, {"error": "unsupported_grant_type"}
