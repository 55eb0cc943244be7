//! The AliExpress user tokens and where refreshed ones are kept.
//!
//! A refresh rotates **both** tokens and kills the old ones, so refreshed tokens must be
//! stored durably and atomically, and two invocations refreshing at once must not both win: that
//! is what [`TokenStore::save`]'s compare-and-set on the previous refresh token is for.

use crate::StoreFailure;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

/// A boxed, `Send` future borrowing from its receiver: keeps [`TokenStore`] object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One AliExpress authorization: the user's access token (the `session` of `/sync` calls) and
/// the refresh token that renews it. `Debug` never prints the tokens.
///
/// `Default` is empty tokens, for struct-update syntax only (a client refuses them).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Tokens {
    /// The user's access token: the `session` parameter of `/sync` calls.
    pub access_token: String,
    /// Renews the access token; rotated (and the old one killed) by every refresh.
    pub refresh_token: String,
    /// When the access token expires, epoch ms (`expire_time`); `None` if unknown, in which case
    /// the client refreshes only when AliExpress refuses the token.
    pub expire_time_ms: Option<i64>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expire_time_ms", &self.expire_time_ms)
            .finish()
    }
}

impl Tokens {
    /// Whether `self` should replace `other` as the tokens to use: a later expiry wins, and
    /// known beats unknown. Identical access tokens are never "newer".
    pub(crate) fn is_newer_than(&self, other: &Tokens) -> bool {
        if self.access_token == other.access_token {
            return false;
        }
        match (self.expire_time_ms, other.expire_time_ms) {
            (Some(a), Some(b)) => a > b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            // Both unknown: the stored pair is the one dropsync refreshed itself, and a refresh
            // kills the pair it started from.
            (None, None) => true,
        }
    }
}

/// Durable storage for refreshed tokens, per app key (the app crate implements it over
/// DynamoDB; [`MemoryTokenStore`] serves tests and local runs).
///
/// Errors keep the adapter's error as their source: the client only logs them, it cannot act on
/// their kind.
pub trait TokenStore: Send + Sync {
    /// The tokens last saved for `app_key`, if any.
    fn load<'a>(&'a self, app_key: &'a str) -> BoxFuture<'a, Result<Option<Tokens>, StoreFailure>>;

    /// Saves both tokens at once, **only if** the stored refresh token is still
    /// `previous_refresh_token` (or nothing is stored; `None` means "only if nothing is
    /// stored"). `Ok(false)` means another invocation refreshed first: its tokens are the live
    /// ones, reload them.
    fn save<'a>(
        &'a self,
        app_key: &'a str,
        previous_refresh_token: Option<&'a str>,
        tokens: &'a Tokens,
    ) -> BoxFuture<'a, Result<bool, StoreFailure>>;
}

/// A [`TokenStore`] in memory, with the same compare-and-set rule as the DynamoDB one.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<HashMap<String, Tokens>>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store already holding `tokens` for `app_key` (as if an earlier invocation refreshed).
    pub fn with(app_key: &str, tokens: Tokens) -> Self {
        let store = Self::default();
        store.put(app_key, tokens);
        store
    }

    /// What is stored for `app_key` now.
    pub fn get(&self, app_key: &str) -> Option<Tokens> {
        self.map().get(app_key).cloned()
    }

    /// Stores `tokens` unconditionally.
    pub fn put(&self, app_key: &str, tokens: Tokens) {
        self.map().insert(app_key.to_owned(), tokens);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tokens>> {
        // A panic elsewhere while holding the lock cannot leave a half-written entry (inserts are
        // single operations), so the data is still good: keep going.
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TokenStore for MemoryTokenStore {
    fn load<'a>(&'a self, app_key: &'a str) -> BoxFuture<'a, Result<Option<Tokens>, StoreFailure>> {
        let found = self.get(app_key);
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(
        &'a self,
        app_key: &'a str,
        previous_refresh_token: Option<&'a str>,
        tokens: &'a Tokens,
    ) -> BoxFuture<'a, Result<bool, StoreFailure>> {
        let saved = {
            let mut map = self.map();
            let allowed = match (map.get(app_key), previous_refresh_token) {
                (None, _) => true,
                (Some(current), Some(prev)) => current.refresh_token == prev,
                (Some(_), None) => false,
            };
            if allowed {
                map.insert(app_key.to_owned(), tokens.clone());
            }
            allowed
        };
        Box::pin(async move { Ok(saved) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(access: &str, refresh: &str, exp: Option<i64>) -> Tokens {
        Tokens {
            access_token: access.into(),
            refresh_token: refresh.into(),
            expire_time_ms: exp,
        }
    }

    #[tokio::test]
    async fn save_is_a_compare_and_set_on_the_previous_refresh_token() {
        let store = MemoryTokenStore::new();
        assert!(
            store
                .save("k", None, &t("a1", "r1", Some(1)))
                .await
                .unwrap()
        );
        assert!(
            !store
                .save("k", None, &t("a2", "r2", Some(2)))
                .await
                .unwrap()
        );
        assert!(
            !store
                .save("k", Some("r0"), &t("a2", "r2", Some(2)))
                .await
                .unwrap()
        );
        assert!(
            store
                .save("k", Some("r1"), &t("a2", "r2", Some(2)))
                .await
                .unwrap()
        );
        assert_eq!(store.load("k").await.unwrap(), Some(t("a2", "r2", Some(2))));
        assert_eq!(store.load("other").await.unwrap(), None);
    }

    #[test]
    fn debug_never_prints_tokens() {
        let text = format!(
            "{:?}",
            MemoryTokenStore::with("k", t("SECRET_A", "SECRET_R", None))
        );
        assert!(!text.contains("SECRET"), "{text}");
    }

    /// Implementations may use elided lifetimes (owning what they need before the future): the
    /// trait's explicit `'a` accepts that more general signature.
    struct Elided(MemoryTokenStore);

    impl TokenStore for Elided {
        fn load(&self, app_key: &str) -> BoxFuture<'_, Result<Option<Tokens>, StoreFailure>> {
            let app_key = app_key.to_owned();
            Box::pin(async move { self.0.load(&app_key).await })
        }

        fn save(
            &self,
            app_key: &str,
            previous_refresh_token: Option<&str>,
            tokens: &Tokens,
        ) -> BoxFuture<'_, Result<bool, StoreFailure>> {
            let (app_key, prev, tokens) = (
                app_key.to_owned(),
                previous_refresh_token.map(str::to_owned),
                tokens.clone(),
            );
            Box::pin(async move { self.0.save(&app_key, prev.as_deref(), &tokens).await })
        }
    }

    #[tokio::test]
    async fn a_store_with_elided_lifetimes_implements_the_trait() {
        let store: std::sync::Arc<dyn TokenStore> =
            std::sync::Arc::new(Elided(MemoryTokenStore::new()));
        assert!(store.save("k", None, &t("a", "r", Some(1))).await.unwrap());
        assert_eq!(store.load("k").await.unwrap(), Some(t("a", "r", Some(1))));
    }

    #[test]
    fn later_expiry_wins() {
        assert!(t("b", "r", Some(2)).is_newer_than(&t("a", "r", Some(1))));
        assert!(!t("b", "r", Some(1)).is_newer_than(&t("a", "r", Some(2))));
        assert!(!t("a", "r", Some(9)).is_newer_than(&t("a", "r", Some(1))));
        assert!(t("b", "r", Some(1)).is_newer_than(&t("a", "r", None)));
        assert!(!t("b", "r", None).is_newer_than(&t("a", "r", Some(1))));
    }
}
