//! The options of a [`PostgresStore`](super::PostgresStore), and their checks that need no server.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// How a [`PostgresStore`] secures its connections (`sslmode=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PostgresTls {
    /// No TLS (`sslmode=disable`, the default): for loopback, Unix sockets and private networks.
    #[default]
    Disable,
    /// TLS with the server's certificate verified, host name included (`sslmode=verify-full`),
    /// against the system's trust store or the given CA certificate (`sslrootcert=`, PEM).
    VerifyFull {
        /// A PEM file of the CA certificates to trust instead of the system's.
        root_cert: Option<PathBuf>,
    },
}

/// Options of a [`PostgresStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Prefixes every key: stores with different namespaces share a database without sharing keys.
    pub namespace: String,
    /// How long connecting, or one call (waiting for a free connection included), may take
    /// before failing with `timeout`.
    pub timeout: Duration,
    /// The most connections the store keeps open at once.
    pub pool_size: usize,
    /// TLS.
    pub tls: PostgresTls,
    /// Create racefree's tables and functions when the database has none (the default); when
    /// `false`, `open` refuses such a database (run `racefree migrate <url>` first).
    pub create_schema: bool,
    /// Prepare each statement once per connection (named server-side statements) instead of
    /// sending it unnamed on every call. Off by default: only safe on a direct connection, or
    /// behind a pooler that tracks prepared statements (PgBouncer 1.21 and later with
    /// `max_prepared_statements` set), never behind an older transaction pooler.
    pub prepare_statements: bool,
}

impl PostgresOptions {
    /// These options with the given namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// These options with the given connect and call timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// These options with the given pool size.
    #[must_use]
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// These options creating (or refusing) a missing schema.
    #[must_use]
    pub fn with_create_schema(mut self, create: bool) -> Self {
        self.create_schema = create;
        self
    }

    /// These options preparing statements once per connection, or not (see
    /// [`prepare_statements`](Self::prepare_statements)).
    #[must_use]
    pub fn with_prepare_statements(mut self, prepare: bool) -> Self {
        self.prepare_statements = prepare;
        self
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            timeout: crate::validate::DEFAULT_SERVER_TIMEOUT,
            pool_size: 8,
            tls: PostgresTls::Disable,
            create_schema: true,
            prepare_statements: false,
        }
    }
}

/// The checks of `options` that need no server.
pub(crate) fn check_options(options: &PostgresOptions) -> Result<()> {
    crate::validate::server_options("postgres", &options.namespace, options.timeout)?;
    if options.pool_size == 0 {
        return Err(Error::invalid_argument("the postgres pool_size must be at least 1"));
    }
    Ok(())
}
