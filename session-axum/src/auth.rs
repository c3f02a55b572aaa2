//! The handle an app builds once: the manager, the access-token keys and the web settings.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::{Extension, Router};
use session_core::{
    ConfigError, ConnectError, Error, LoginRequest, RefreshRequest, RefreshToken, SessionManager,
    UserId,
};
use zeroize::Zeroizing;

use crate::access::{AccessKey, AccessTokens};
use crate::client::ClientInfo;
use crate::config::WebConfig;
use crate::error::ApiError;
use crate::extract::AuthSession;
use crate::issued::Issued;
use crate::view::SessionView;

/// What the access-token key is derived for, from a configured secret.
const ACCESS_PURPOSE: &str = "access-token hs256";

/// The web side of the sessions: build it once at start-up, then [`SessionAuth::wire`] it into
/// the router. Cloning is cheap.
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use session_axum::{AuthSession, SessionAuth, WebConfig};
///
/// # async fn demo(manager: session_core::SessionManager) -> Result<(), Box<dyn std::error::Error>> {
/// let auth = SessionAuth::new(manager, WebConfig::default()).await?;
/// let app: Router = auth.wire(
///     Router::new().route("/me", get(|me: AuthSession| async move { me.user_id.to_string() })),
/// );
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SessionAuth {
    inner: Arc<Inner>,
}

struct Inner {
    manager: SessionManager,
    tokens: AccessTokens,
    config: WebConfig,
}

impl std::fmt::Debug for SessionAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionAuth")
            .field("config", &self.inner.config)
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

impl SessionAuth {
    /// Access tokens signed with HS256 under a key derived from
    /// [`WebConfig::access_key`], or else from the manager's configured
    /// [`rotation_key`](session_core::SessionConfig::rotation_key): every instance with the same
    /// configuration accepts the others' tokens. With neither, the key is random and this
    /// process's own, which suits one instance (a restart costs each client one refresh); with
    /// several, each would refuse the others' tokens, so this is logged as a warning. The key is
    /// never kept in the session store, so a dump of it cannot mint access tokens. Also reads the
    /// manager's rotation key.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Config`] for invalid settings, [`ConnectError::Store`] if the store
    /// cannot be read.
    pub async fn new(manager: SessionManager, config: WebConfig) -> Result<Self, ConnectError> {
        config.validate()?;
        manager.load_rotation_key().await?;
        let key = match (&config.access_key, &manager.config().rotation_key) {
            (Some(secret), _) => {
                AccessKey::hs256("configured", secret.derive(ACCESS_PURPOSE).as_ref())?
            }
            (None, Some(rotation)) => {
                AccessKey::hs256("rotation", rotation.derive(ACCESS_PURPOSE).as_ref())?
            }
            (None, None) => {
                tracing::warn!(
                    "no access_key nor rotation_key configured: access tokens are signed with a \
                     key of this process alone; configure one if several instances serve the app"
                );
                let mut secret = Zeroizing::new([0_u8; 32]);
                getrandom::fill(secret.as_mut())
                    .map_err(|e| Error::backend("os-rng", e.to_string()))?;
                AccessKey::hs256("process", secret.as_ref())?
            }
        };
        Ok(Self::with_keys(manager, config, key, Vec::new())?)
    }

    /// Access tokens signed with `signing`, and also accepted when signed with one of `retired`
    /// (key rotation: add the new key as `signing`, keep the old one here for one access-token
    /// lifetime, then drop it).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for invalid settings or keys.
    pub fn with_keys(
        manager: SessionManager,
        config: WebConfig,
        signing: AccessKey,
        retired: Vec<AccessKey>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let tokens = AccessTokens::new(signing, retired, config.issuer.clone(), config.access_ttl)?;
        Ok(Self {
            inner: Arc::new(Inner {
                manager,
                tokens,
                config,
            }),
        })
    }

    /// The session manager.
    #[must_use]
    pub fn manager(&self) -> &SessionManager {
        &self.inner.manager
    }

    /// The web settings.
    #[must_use]
    pub fn config(&self) -> &WebConfig {
        &self.inner.config
    }

    /// The access-token issuer and verifier.
    #[must_use]
    pub fn access_tokens(&self) -> &AccessTokens {
        &self.inner.tokens
    }

    /// The layer that makes this handle reachable from extractors ([`AuthSession`],
    /// [`ClientInfo`], `SessionAuth` itself). [`SessionAuth::wire`] adds it.
    ///
    /// [`AuthSession`]: crate::AuthSession
    pub fn layer(&self) -> Extension<Self> {
        Extension(self.clone())
    }

    /// Mounts [`SessionAuth::routes`] at [`WebConfig::prefix`] and adds [`SessionAuth::layer`]
    /// to the whole app: the one call that wires everything.
    pub fn wire<S>(&self, app: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        app.nest(&self.inner.config.prefix, self.routes())
            .layer(self.layer())
    }

    /// Signs `user` in: creates a session (the per-user cap applies) with the request's device
    /// information, and issues both tokens. Call it from your login handler once your own
    /// credential check passed, and return the result (or [`Issued::redirect`]).
    ///
    /// # Errors
    ///
    /// [`ApiError::Session`] with the manager's errors (`LimitReached`, `Unavailable`, ...).
    pub async fn login(&self, user: &UserId, client: ClientInfo) -> Result<Issued, ApiError> {
        self.login_with(user, LoginRequest::new().with_device(client.0))
            .await
    }

    /// [`SessionAuth::login`] with a full [`LoginRequest`] (app data, a device name).
    ///
    /// # Errors
    ///
    /// As [`SessionAuth::login`].
    pub async fn login_with(
        &self,
        user: &UserId,
        request: LoginRequest,
    ) -> Result<Issued, ApiError> {
        let login = self.inner.manager.login(user, request).await?;
        self.issue(login.session, login.token)
    }

    /// Rotates `refresh_token` and issues new tokens (what the refresh route does).
    ///
    /// # Errors
    ///
    /// [`ApiError::Session`] with the manager's refresh errors.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: ClientInfo,
    ) -> Result<Issued, ApiError> {
        let refreshed = self
            .inner
            .manager
            .refresh_with(refresh_token, RefreshRequest::new().with_device(client.0))
            .await?;
        self.issue(refreshed.session, refreshed.token)
    }

    /// The signed-in user's live sessions as a devices page shows them, newest first, the
    /// current one marked (what `GET /sessions` answers).
    ///
    /// # Errors
    ///
    /// [`ApiError::Session`] with the manager's errors.
    pub async fn sessions(&self, me: &AuthSession) -> Result<Vec<SessionView>, ApiError> {
        let sessions = self.inner.manager.list(&me.user_id).await?;
        Ok(sessions
            .iter()
            .map(|record| SessionView::new(record, Some(&me.session_id)))
            .collect())
    }

    fn issue(
        &self,
        session: session_core::SessionRecord,
        refresh: RefreshToken,
    ) -> Result<Issued, ApiError> {
        let now = self.inner.manager.now();
        let access = self.inner.tokens.issue(&session, now)?;
        Ok(Issued::new(session, refresh, access, self.clone(), now))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SessionAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(ApiError::NotWired)
    }
}
